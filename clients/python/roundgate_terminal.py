#!/usr/bin/env python3
"""A roundgate terminal over MQTT with paho-mqtt (Debian's python3-paho-mqtt: 1.6 on Debian 12;
paho-mqtt 2.x works too).

    from roundgate_terminal import Terminal
    t = Terminal("127.0.0.1", 1883, group="render", client_id="py-1", job=lambda release: (True, {"frames": 10}))
    t.run(rounds=None)   # for ever; Ctrl-C leaves cleanly

It sets rg/{g}/leave/{id} as its MQTT will, reconnects by itself (1 s to 10 s apart), heartbeats
every heartbeat_ms, declares ready, waits for its release (retained, so a release that went out
while it was reconnecting still reaches it), waits until the release's startAt on the broker's
clock (estimated from serverTime; a protocol 1.0 release without startAt starts at once), runs the
job in a worker thread, reports done, and declares ready again. See README.md beside this file.
"""
import argparse
import json
import logging
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt

log = logging.getLogger("roundgate")

PAHO2 = hasattr(mqtt, "CallbackAPIVersion")


def now_ms():
    return time.time() * 1000.0


class Terminal:
    def __init__(self, host, port, group, client_id, job, role="small", prefix="rg",
                 heartbeat_ms=10000, keepalive=30, username=None, password=None, tls=False):
        self.host, self.port = host, port
        self.group, self.client_id, self.role, self.prefix = group, client_id, role, prefix
        self.job = job
        self.heartbeat_ms = heartbeat_ms
        self.keepalive = keepalive
        self.rounds_done = 0
        self.last_round = 0          # the highest round this terminal has taken
        self.offset_ms = None        # broker clock minus ours, from the last release
        self._busy = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._wake = threading.Event()   # set when run() should look again: stop or finished
        self._target = None
        if PAHO2:
            # the 1.x callback signatures: the handlers below are written for both
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id,
                                      clean_session=True, protocol=mqtt.MQTTv311)
        else:
            self.client = mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set()
        # [PROTOCOL 4] terminals should set leave as their will: a lost connection is a leave
        self.client.will_set(self.topic("leave"), "{}", qos=1, retain=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def topic(self, kind):
        if kind in ("release", "state", "rounds"):
            return "%s/%s/%s" % (self.prefix, self.group, kind)
        return "%s/%s/%s/%s" % (self.prefix, self.group, kind, self.client_id)

    def send(self, kind, body):
        return self.client.publish(self.topic(kind), json.dumps(body), qos=1)

    # --- connection ---------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, rc, *rest):
        if rc != 0:
            log.warning("connection refused: %s", mqtt.connack_string(rc) if isinstance(rc, int) else rc)
            return
        log.info("connected to %s:%s as %s", self.host, self.port, self.client_id)
        client.subscribe([(self.topic("release"), 1), (self.topic("error"), 1)])
        self.send("hb", {"role": self.role})
        with self._lock:
            busy = self._busy
        if not busy and self._wants_more():
            self.send("ready", {"role": self.role})

    def _on_disconnect(self, client, userdata, *args):
        if not self._stop.is_set():
            log.warning("disconnected (%s); reconnecting", args[-2] if len(args) >= 2 else (args[0] if args else "?"))

    def _on_message(self, client, userdata, msg):
        if msg.topic == self.topic("error"):
            log.warning("the broker refused a message: %s", msg.payload.decode("utf-8", "replace"))
            return
        if msg.topic != self.topic("release") or not msg.payload:
            return
        received = now_ms()
        try:
            release = json.loads(msg.payload)
        except ValueError:
            log.warning("a release that is not JSON: %r", msg.payload[:200])
            return
        rnd = release.get("round")
        with self._lock:
            if not isinstance(rnd, int) or rnd <= self.last_round or self._busy:
                return  # a copy of a round already taken (retained, after a reconnect)
            self.last_round = rnd
            self._busy = True
        threading.Thread(target=self._work, args=(release, received), daemon=True).start()

    # --- a round ------------------------------------------------------------------------------

    def start_delay_ms(self, release, received):
        """How long until startAt on our clock; 0 for a protocol 1.0 release (no startAt)."""
        start_at = release.get("startAt")
        if not isinstance(start_at, (int, float)):
            return 0.0
        server_time = release.get("serverTime")
        if isinstance(server_time, (int, float)):
            self.offset_ms = server_time - received
        if self.offset_ms is None:
            return 0.0
        return max(0.0, start_at - (now_ms() + self.offset_ms))

    def _work(self, release, received):
        rnd = release["round"]
        delay = self.start_delay_ms(release, received)
        if delay > 0:
            time.sleep(delay / 1000.0)
        shard = release.get("shard") or {}
        log.info("round %d released (shard %s of %s), started after %.0f ms", rnd, shard.get("index"), shard.get("count"), delay)
        try:
            outcome = self.job(release)
            ok, result = outcome if isinstance(outcome, tuple) else (bool(outcome), None)
        except Exception as err:  # the job's failure is the round's report, not the terminal's end
            log.exception("job of round %d failed", rnd)
            ok, result = False, str(err)
        body = {"round": rnd, "ok": bool(ok)}
        if result is not None:
            body["result"] = result
        info = self.send("done", body)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # paho keeps a QoS 1 message it could not send and sends it once reconnected
            log.warning("done of round %d waits for the connection (%s)", rnd, mqtt.error_string(info.rc))
        with self._lock:
            self.rounds_done += 1
            self._busy = False
        if self._wants_more():
            self.send("ready", {"role": self.role})
        else:
            self._finished.set()
            self._wake.set()

    def _wants_more(self):
        return self._target is None or self.rounds_done < self._target

    # --- running ------------------------------------------------------------------------------

    def run(self, rounds=None, timeout=None):
        """Run `rounds` rounds (None: until stop()). Returns the number of rounds done."""
        self._target = rounds
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        deadline = None if timeout is None else time.time() + timeout
        try:
            while not self._stop.is_set() and not self._finished.is_set():
                left = None if deadline is None else deadline - time.time()
                if left is not None and left <= 0:
                    log.warning("gave up after %s s", timeout)
                    break
                self._wake.wait(self.heartbeat_ms / 1000.0 if left is None else min(left, self.heartbeat_ms / 1000.0))
                if self.client.is_connected() and not self._finished.is_set():
                    self.send("hb", {"role": self.role})
        finally:
            self.leave()
        return self.rounds_done

    def stop(self):
        self._stop.set()
        self._wake.set()

    def leave(self):
        """Say leave, then disconnect cleanly (the will is not published after a DISCONNECT)."""
        self._stop.set()
        if self.client.is_connected():
            self.send("leave", {}).wait_for_publish(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()


def main(argv=None):
    p = argparse.ArgumentParser(description="an example roundgate terminal over MQTT")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--group", required=True)
    p.add_argument("--id", required=True, help="the terminal's clientId")
    p.add_argument("--role", default="small", choices=["small", "boss"])
    p.add_argument("--prefix", default="rg")
    p.add_argument("--rounds", type=int, default=None, help="stop after this many rounds (default: run for ever)")
    p.add_argument("--job-ms", type=int, default=100, help="how long each job takes")
    p.add_argument("--heartbeat-ms", type=int, default=10000)
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--username")
    p.add_argument("--password")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    terminal = None

    def job(release):
        started = now_ms() + (terminal.offset_ms or 0)
        time.sleep(args.job_ms / 1000.0)
        shard = release.get("shard") or {}
        print("round %d shard %s/%s" % (release["round"], shard.get("index"), shard.get("count")), flush=True)
        return True, {"lang": "python", "shard": shard.get("index"), "startedAt": int(started)}

    terminal = Terminal(args.host, args.port, args.group, args.id, job, role=args.role, prefix=args.prefix,
                        heartbeat_ms=args.heartbeat_ms, username=args.username, password=args.password)
    signal.signal(signal.SIGTERM, lambda *_: terminal.stop())
    signal.signal(signal.SIGINT, lambda *_: terminal.stop())
    n = terminal.run(rounds=args.rounds, timeout=args.timeout)
    log.info("%d round(s) done", n)
    return 0 if args.rounds is None or n >= args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
