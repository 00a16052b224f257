#!/usr/bin/env python3
# Usage: start a server (e.g. IYAGI_WS__FRAMES_PER_SECOND=1000 iyagi serve), then
#   python3 scripts/slow-reader-memory.py http://127.0.0.1:8080 SERVER_PID
# (needs `pip install websockets`). Used for docs/benchmarks.md.
# One ordinary user pins memory: 300 history requests of 200 large messages
# each, never reading. Prints the server's RSS over time.
import asyncio, json, sys, time, urllib.request, websockets

BASE = sys.argv[1]; PID = int(sys.argv[2])
def rss():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
def post(path, body, token=None):
    req = urllib.request.Request(BASE + path, json.dumps(body).encode(), {"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    return json.load(urllib.request.urlopen(req))
def login(name):
    try: post("/v1/auth/register", {"username": name, "password": "correct horse"})
    except Exception: pass
    return post("/v1/auth/login", {"username": name, "password": "correct horse", "device": {"id": "d", "platform": "web"}})
async def main():
    a, b = login("pin_a"), login("pin_b")
    room = post("/v1/rooms/direct", {"user_id": b["user_id"]}, a["access_token"])["id"]
    ws_url = BASE.replace("http", "ws")
    async with websockets.connect(f"{ws_url}/v1/ws?access_token={a['access_token']}", max_size=None) as ws:
        pad = "p" * 15000
        for i in range(200):
            await ws.send(json.dumps({"type": "send", "ref": str(i), "room_id": room, "client_msg_id": f"m{i}", "kind": "text", "content": {"text": "big", "pad": pad}}))
            while json.loads(await ws.recv())["type"] != "ack": pass
    print(f"rss before: {rss():.0f} MiB")
    reader = await websockets.connect(f"{ws_url}/v1/ws?access_token={b['access_token']}", max_size=None)
    peak = 0
    sent = 0
    try:
        for i in range(300):
            await reader.send(json.dumps({"type": "history", "ref": f"h{i}", "room_id": room, "limit": 200}))
            sent += 1
            peak = max(peak, rss())
            await asyncio.sleep(0.02)
    except websockets.ConnectionClosed as e:
        print(f"the server closed the connection after {sent} requests: {e}")
    for _ in range(8):
        peak = max(peak, rss()); await asyncio.sleep(0.25)
    print(f"rss peak while the reader reads nothing: {peak:.0f} MiB")
    answers, code = 0, None
    try:
        async for msg in reader:
            if json.loads(msg).get("type") == "history": answers += 1
    except websockets.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else None
    print(f"then read: {answers} answers, close code {code}; rss after: {rss():.0f} MiB")
asyncio.run(main())
