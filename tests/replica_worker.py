"""A router replica in its own process, for the kill -9 test: durable log on PostgreSQL, requests from
several threads, and each acknowledged decision id appended to a file as complete() returns.

    python replica_worker.py URL ACK_FILE THREADS
"""

from __future__ import annotations

import os
import sys
import threading

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from replica_load import MODELS, messages, scorer  # noqa: E402

from adaptroute import Router  # noqa: E402


def main() -> None:
    url, ack_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    router = Router(MODELS, store=url, scorer=scorer, durable=True, sync_interval_s=0.2, seed=7)
    acks = open(ack_path, "a", buffering=1)  # noqa: SIM115 - one line per acknowledged request
    lock = threading.Lock()

    def serve(worker: int) -> None:
        i = 0
        while True:
            response = router.complete(messages(worker * 1_000_000 + i), task=("extract", "tag", "draft")[i % 3],
                                       mock_response="ok")
            with lock:
                acks.write(response.adaptroute.decision_id + "\n")
            i += 1

    for worker in range(threads):
        threading.Thread(target=serve, args=(worker,), daemon=True).start()
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
