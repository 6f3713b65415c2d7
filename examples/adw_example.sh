#!/bin/sh
# A stand-in for an ADW (AI developer workflow): takes a task, goes through its steps and
# prints what it does. `orchestrator runner` starts it with ORCHESTRATOR_URL,
# ORCHESTRATOR_RUN_ID and ORCHESTRATOR_SESSION_ID in its environment; its output is the
# run's output on the dashboard.
set -e
task="${1:-nothing in particular}"
echo "ADW for: $task"
echo "run $ORCHESTRATOR_RUN_ID on $ORCHESTRATOR_URL"
for step in plan build test review; do
    echo "== $step"
    sleep 1
done
# A real ADW drives Claude Code here. With the project connected
# (`orchestrator connect claude-code`), every session it starts reports as a child run of
# this one, and the run's tree rolls up their cost:
#   claude -p "Implement: $task"
if [ "$task" = "fail" ]; then
    echo "tests failed" >&2
    exit 3
fi
echo "done"
