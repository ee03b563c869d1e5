"""A master that the resume test kills and restarts: ``resume_master.py STATE OUT WORKER PHASE``.

first: submit 6 tasks, collect 2, write them to OUT, then die by SIGKILL (no cleanup at all).
again: a new master on the same state directory collects what the first one left (``resumed``).
plain: what an ordinary script does, run again: submit the same 6 tasks, add up the results.
"""

import json
import os
import signal
import sys

from pymw_admin.interfaces.condor import CondorInterface
from pymw_admin.runtime import Master, Task


def square_after(x: int, seconds: float) -> tuple[int, int]:
    import time

    time.sleep(seconds)
    return x, x * x


def submit_all(master: Master) -> list[Task]:
    # two quick tasks, four that are still running when the first master dies
    return [master.submit_task(square_after, input_data=(x, 0 if x < 2 else 6))
            for x in range(6)]


def main() -> None:
    state, out, worker, phase = sys.argv[1:5]
    master = Master(interface=CondorInterface(app_path=worker, state_dir=state), retries=0)
    with open(out, "a") as f:
        if phase == "plain":
            tasks = submit_all(master)
            total = sum(master.get_result(timeout=300)[1][1] for _ in tasks)
            f.write(json.dumps({"sum": total, "tasks": [t.task_id for t in tasks],
                                "reused": master.reused, "computed": master.computed}) + "\n")
            master.cleanup()
            return
        if phase == "first":
            tasks = submit_all(master)
            f.write(json.dumps({"submitted": [t.task_id for t in tasks]}) + "\n")
            for _ in range(2):
                task, (x, value) = master.get_result()
                f.write(json.dumps({"task": task.task_id, "x": x, "value": value}) + "\n")
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        f.write(json.dumps({"resumed": [t.task_id for t in master.resumed]}) + "\n")
        for _ in master.resumed:
            task, (x, value) = master.get_result(master.resumed, timeout=300)
            f.write(json.dumps({"task": task.task_id, "x": x, "value": value}) + "\n")
            f.flush()
    master.cleanup()


if __name__ == "__main__":
    main()
