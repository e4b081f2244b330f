module podiq.test/pause

go 1.26.0
