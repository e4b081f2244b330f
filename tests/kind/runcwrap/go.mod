module podiq.test/runcwrap

go 1.26.0
