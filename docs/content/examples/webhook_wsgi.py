"""A Cyberun webhook receiver as a plain WSGI app (standard library only).

Run it with ``python webhook_wsgi.py``, or serve ``app`` with any WSGI server
(gunicorn, uWSGI, mod_wsgi). Set CYBERUN_WEBHOOK_SECRET to the webhook's
``whsec_...`` secret.
"""

import os

from cyberun.webhooks import DeliveryDeduplicator, InvalidSignature, parse_delivery

SECRET = os.environ.get("CYBERUN_WEBHOOK_SECRET", "")
seen = DeliveryDeduplicator()


def handle_delivery(delivery):
    """Your code. It runs once per (task_id, event_type), retries or not."""
    print(f"{delivery.event_type}: task {delivery.task_id} is {delivery.task_status}")


def app(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":
        start_response("405 Method Not Allowed", [("Allow", "POST")])
        return [b""]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)  # the raw bytes: verify before parsing
    try:
        delivery = parse_delivery(body, environ, SECRET)
    except InvalidSignature:
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b"invalid signature"]
    if seen.first_time(delivery):
        try:
            handle_delivery(delivery)
        except Exception:
            seen.forget(delivery)  # let Cyberun's retry run it again
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"handler failed; retry"]
    start_response("204 No Content", [])
    return [b""]


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("", 8080, app) as server:
        print("listening on :8080")
        server.serve_forever()
