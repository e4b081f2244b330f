pytest_plugins = ["tests.cluster.pytest_plugin", "tests.kind.pytest_plugin", "tests.redisserver"]
