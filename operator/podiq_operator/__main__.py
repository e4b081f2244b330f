from podiq_operator.main import cli

cli()
