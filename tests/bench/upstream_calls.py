"""upstream_calls.py: sequential calls through POST /v1/chat/completions to an `http` model served by
Python's http.server (which writes an answer's head and body apart, with Nagle on), over http:// or
https://, and the latency each takes end to end (client, accrue serve, upstream, back).

    python3 tests/bench/upstream_calls.py ACCRUE_BINARY [http|https] [CALLS]

Run from the repository with the test venv's python (it uses tests/server/harness.py). The ledger
books without fsync here (--ledger-no-sync) so that the figure is the upstream path's.
"""
import http.server
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
os.environ["ACCRUE_BIN"] = os.path.abspath(sys.argv[1])
from harness import Server, localhost_tls, serve_in_thread  # noqa: E402
from test_openai import register  # noqa: E402

import requests  # noqa: E402


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"id": "up", "object": "chat.completion",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    scheme = sys.argv[2] if len(sys.argv) > 2 else "https"
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    cert, ctx = localhost_tls()
    up = serve_in_thread(Upstream, ctx if scheme == "https" else None)
    srv = Server(env={"SSL_CERT_FILE": cert}, args=["--ledger-no-sync"])
    with srv:
        register(srv, "up/model", f"{scheme}://localhost:{up.server_address[1]}/v1", "m", price_per_call=1)
        s, h = requests.Session(), srv.auth(None)
        body = {"model": "up/model", "messages": [{"role": "user", "content": "x"}]}
        lat = []
        for i in range(50 + calls):
            t0 = time.perf_counter()
            r = s.post(srv.url + "/v1/chat/completions", json=body, headers=h)
            if i >= 50:
                lat.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise SystemExit(f"call {i}: {r.status_code} {r.text}")
        conns = next(line.split()[1] for line in srv.get("/metrics").text.splitlines()
                     if line.startswith("accrue_upstream_connections_total "))
    up.shutdown()
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3  # noqa: E731
    print(f"{scheme}: {calls} sequential calls after 50 to warm up: p50 {pct(0.5):.2f} ms, p90 {pct(0.9):.2f} ms, "
          f"p99 {pct(0.99):.2f} ms; upstream connections opened {conns}")


if __name__ == "__main__":
    main()
