#!/bin/sh
# StreamFunction's start command (Lambda Web Adapter): the same ASGI app under uvicorn, streaming for real.
exec python -m uvicorn functions.gateway.app:app --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log
