#!/usr/bin/env python3
"""HTTP stand-ins for the platform's services: api, ai-gateway, mcp-server, console, temporal."""
import json, os, signal, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from checks import postgres_ok, redis_ok

role, port = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


# temporal stand-in: an in-memory workflow list that /temporal can read and terminate.
workflows = {f"wf-{i:04d}": {"workflow_id": f"wf-{i:04d}", "type": "SyncArtifacts", "status": "Running"} for i in range(1, 6)}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server_version = role

    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0]
        if role == "api" and path in ("/healthz", "/health"):
            if os.path.exists("/tmp/fault-unhealthy"):
                return self.reply(503, {"status": "error", "reason": "health check forced to fail"})
            pg, rd = postgres_ok(), redis_ok()
            ok = pg and rd
            return self.reply(200 if ok else 503, {"status": "ok" if ok else "error", "postgres": pg, "redis": rd, "instance": socket.gethostname()})
        if role == "ai-gateway" and path == "/health":
            pg, rd = postgres_ok(), redis_ok()
            ok = pg and rd
            body = {"status": "ok" if ok else "degraded", "redis": "up" if rd else "down", "postgres": "up" if pg else "down", "providers": {"openai": "configured"}}
            return self.reply(200 if ok else 503, body)
        if role == "mcp-server" and path == "/health":
            return self.reply(200, {"status": "ok", "tools": 12})
        if role == "console":
            if path == "/__vite_ping":
                return self.reply(200, b"pong\n", "text/plain")
            if path == "/":
                return self.reply(200, b"<!doctype html><title>console</title><div id=root></div>\n", "text/html")
        if role == "temporal":
            if path == "/health":
                return self.reply(200, {"status": "SERVING"})
            if path == "/api/v1/namespaces/default/workflows":
                with lock:
                    return self.reply(200, {"executions": list(workflows.values())})
        if role == "api" and path == "/api/v1/tenants":
            return self.reply(200, {"tenants": ["acme", "globex"]})
        self.reply(404, {"error": "not found", "path": path})

    def do_POST(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        # /api/v1/namespaces/default/workflows/<id>/terminate
        if role == "temporal" and len(parts) == 7 and parts[4] == "workflows" and parts[6] == "terminate":
            with lock:
                wf = workflows.get(parts[5])
                if wf is None:
                    return self.reply(404, {"error": "workflow not found", "workflow_id": parts[5]})
                wf["status"] = "Terminated"
                print(f"workflow {parts[5]} terminated", flush=True)
                return self.reply(200, wf)
        self.reply(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), self.address_string(), fmt % args))


if role == "api":
    print(f"connecting to {os.environ.get('DATABASE_URL', '')}", flush=True)
print(f"{role} listening on :{port}", flush=True)
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
