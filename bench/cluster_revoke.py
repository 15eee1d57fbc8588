#!/usr/bin/env python3
"""Revoke-on-A → refused-on-C latency for bench/cluster.sh (issue 11, item 6).

Per sample, on keep-alive connections straight to two instances (not through
the balancer):

  1. a client_credentials token from A (POST /oauth/token);
  2. introspection at C by the same client (its own token): must be active;
  3. the clock starts; RFC 7009 revocation at A (POST /oauth/revoke) until A
     answers 200; then introspection at C, without pause, until it answers
     active: false; the clock stops.

The time includes the revoke request itself. "still active at the first
check" counts the samples whose first introspection at C after A's 200 still
said active: true (with exact acknowledgement it must be 0).

Only the standard library. Usage:
  cluster_revoke.py A_BASE C_BASE CLIENT_ID CLIENT_SECRET SAMPLES

Prints progress on stderr, and one line on stdout:
  CLUSTER_RESULT samples=.. p50_ms=.. p99_ms=.. max_ms=.. ack_p50_ms=..
  ack_p99_ms=.. ack_max_ms=.. still_active_first=.. max_polls=..
  not_active_before=.. errors=.. first_error=..
Exits 1 only when it cannot measure (no sample, a connection that fails).
"""

import base64
import http.client
import json
import math
import sys
import time
import urllib.parse


class Instance:
    """One keep-alive HTTP/1.1 connection to an instance."""

    def __init__(self, base, auth):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.auth = auth
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        self.reconnects = 0

    def post(self, path, form):
        body = urllib.parse.urlencode(form)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": self.auth,
        }
        for attempt in (1, 2):
            try:
                self.conn.request("POST", path, body, headers)
                res = self.conn.getresponse()
                return res.status, res.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                # The server closed an idle keep-alive connection: once more
                # on a new one (every request here may be repeated).
                self.conn.close()
                self.reconnects += 1
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def percentile(sorted_values, p):
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def main():
    if len(sys.argv) != 6:
        print(__doc__.split("Usage:")[1].split("\n")[1].strip(), file=sys.stderr)
        return 2
    a_base, c_base, client_id, secret, samples = sys.argv[1:]
    samples = int(samples)
    auth = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    a, c = Instance(a_base, auth), Instance(c_base, auth)

    def introspect_active(token):
        status, body = c.post("/oauth/introspect", {"token": token})
        if status != 200:
            raise RuntimeError(f"introspection at C: {status} {body[:200]!r}")
        return json.loads(body)["active"] is True

    latencies, acks = [], []
    still_active_first = max_polls = not_active_before = errors = 0
    first_error = ""
    progress_every = max(1, samples // 10)
    n = 0
    while len(latencies) < samples:
        n += 1
        if n > 2 * samples + 10:
            break  # too many failed samples: report what there is
        try:
            status, body = a.post("/oauth/token", {"grant_type": "client_credentials"})
            if status != 200:
                raise RuntimeError(f"token at A: {status} {body[:200]!r}")
            token = json.loads(body)["access_token"]
            if not introspect_active(token):
                # C refuses a live token (a stale instance fails closed):
                # not a revocation sample.
                not_active_before += 1
                continue

            start = time.perf_counter()
            status, body = a.post("/oauth/revoke", {"token": token})
            acked = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"revoke at A: {status} {body[:200]!r}")
            polls = 0
            while True:
                polls += 1
                if not introspect_active(token):
                    break
                if polls == 1:
                    still_active_first += 1
                if time.perf_counter() - start > 30:
                    raise RuntimeError("still active at C 30 s after the revocation")
            done = time.perf_counter()
        except (RuntimeError, KeyError, ValueError) as e:
            errors += 1
            first_error = first_error or str(e)
            continue
        latencies.append((done - start) * 1000)
        acks.append((acked - start) * 1000)
        max_polls = max(max_polls, polls)
        if len(latencies) % progress_every == 0:
            print(f"    {len(latencies)}/{samples} revocations", file=sys.stderr)

    if not latencies:
        print(f"cluster_revoke.py: no sample measured ({errors} errors, first: {first_error};"
              f" {not_active_before} tokens not active at C before the revocation)",
              file=sys.stderr)
        return 1
    latencies.sort()
    acks.sort()
    fields = {
        "samples": len(latencies),
        "p50_ms": f"{percentile(latencies, 50):.2f}",
        "p99_ms": f"{percentile(latencies, 99):.2f}",
        "max_ms": f"{latencies[-1]:.2f}",
        "ack_p50_ms": f"{percentile(acks, 50):.2f}",
        "ack_p99_ms": f"{percentile(acks, 99):.2f}",
        "ack_max_ms": f"{acks[-1]:.2f}",
        "still_active_first": still_active_first,
        "max_polls": max_polls,
        "not_active_before": not_active_before,
        "errors": errors,
        "reconnects": a.reconnects + c.reconnects,
    }
    line = " ".join(f"{k}={v}" for k, v in fields.items())
    # Last, and free text: the first error's message.
    print(f"CLUSTER_RESULT {line} first_error={first_error.replace(chr(10), ' ')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
