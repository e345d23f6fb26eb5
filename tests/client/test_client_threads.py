"""One Client shared by threads: requests are serialized, data stays intact."""
import threading

import numpy as np

import tierd


def test_threads_share_a_client(daemon):
    errors = []
    with tierd.connect(daemon.socket) as c:
        def work(t):
            try:
                for i in range(40):
                    v = np.full(1000 + t * 10 + i, t, np.uint8)
                    c.put("cache", f"t{t}/{i % 4}", v)
                    with c.get("cache", f"t{t}/{i % 4}") as lease:
                        assert np.array_equal(lease.array, v)
                    assert c.contains("cache", f"t{t}/{i % 4}")
                    list(c.list("cache", prefix=f"t{t}/"))
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors, errors
