"""taskiq's `taskiq scheduler` as functions (`run_scheduler(SchedulerArgs(...))`); podiq has no
scheduler process of its own: on Kubernetes, schedules are CronJobs."""
