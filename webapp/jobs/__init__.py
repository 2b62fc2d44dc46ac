"""Running detection off the request, in one home:

- `scheduling`: how work runs (a thread stream in each web process, inline, or Celery tasks on
  the broker); it knows nothing of what it runs. `celery`: the Celery app and its queues.
- `queue`: how a run is queued (uploads, re-runs, retries, the import, recovery all call it),
  at the priority `priorities` gives it (each user's fair share).
- `pipeline`: the stages a run goes through (prepare, detect, render, store); `stream`: those
  stages in threads, several runs at a time, batched on the model.
- `recovery`: work a stopped process left (interrupted) or a lost message left (lost).
- `lifecycle`: what a process does when it starts and stops (gunicorn workers and Celery
  workers alike); `reports`: what a Celery worker tells the web tier about its model;
  `processes`: who owns a job (host:pid:start of a process).
"""
