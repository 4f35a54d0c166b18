"""A stand-in for ms-swift's `swift` command, for fast tests of what mhsft sends.

Each call appends {argv, env, pid, pgid} to $FAKE_SWIFT_LOG (a jsonl file). $FAKE_SWIFT_MODE picks what it does:
  exit:N    exit with code N (default exit:0)
  wait:N    write $FAKE_SWIFT_LOG.started, then exit N once $FAKE_SWIFT_LOG.go exists
  sleep     write $FAKE_SWIFT_LOG.started, spawn a grandchild `sleep`, then wait for a signal; on SIGINT or
            SIGTERM write the signal name to $FAKE_SWIFT_LOG.signal and exit 128+signum
  train     lay out swift 4.6's output tree under --output_dir (v0-..., checkpoint-N, last-checkpoint, logging.jsonl)
For sft, the run folder is --output_dir itself with `--add_version false`, else the next vN-<now> folder as 4.6
names it; it gets owner.json ({pid}). $FAKE_SWIFT_HOLD seconds of sleep after the layout make runs overlap.
With $FAKE_SWIFT_SWANLAB=N, logging.jsonl holds N steps, and with --swanlab_mode local the real swanlab SDK logs
the same losses (as swift's callback: its run id and log folder from the environment mhsft gives), one every
$FAKE_SWIFT_STEP_S seconds; without it, --swanlab_mode local and $SWANLAB_LOG_DIR give an (empty) SwanLab run
folder there. With $FAKE_SWIFT_ANSWER set, `infer --val_dataset IN --result_path OUT` writes each row of IN to
OUT with that text as its `response` ({adapters} in it: the --adapters value, `none` without one).
  serve     a tiny OpenAI-like server on --port (GET /v1/models, /health), like `swift deploy`
  elastic   like torch elastic: start a trainer in a session of its own that ignores SIGTERM (its pid goes to
            $FAKE_SWIFT_LOG.trainer-<SLURM_RESTART_COUNT>), then wait; SIGTERM ends swift at once, trainer left
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def option(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def logged_steps():
    return int(os.environ.get("FAKE_SWIFT_SWANLAB", "0"))


def lay_out_training(argv):
    out = Path(option(argv, "--output_dir", "output"))
    out.mkdir(parents=True, exist_ok=True)
    if option(argv, "--add_version", "true") == "false":
        run = out
    else:  # swift 4.6's add_version_to_work_dir: 1 + the highest N of any name starting with vN
        n = 1 + max([int(m.group(1)) for p in out.iterdir() if (m := re.match(r"v(\d+)", p.name))], default=-1)
        run = out / f"v{n}-{time.strftime('%Y%m%d-%H%M%S')}"
        run.mkdir(exist_ok=True)
    (run / "owner.json").write_text(json.dumps({"pid": os.getpid()}))
    if option(argv, "--swanlab_mode") == "local" and os.environ.get("SWANLAB_LOG_DIR") and not logged_steps():
        stamp, run_id = time.strftime("%Y%m%d_%H%M%S"), os.environ.get("SWANLAB_RUN_ID", "fake")
        (Path(os.environ["SWANLAB_LOG_DIR"]) / f"run-{stamp}-{run_id}").mkdir(parents=True, exist_ok=True)
    steps = [int(s) for s in os.environ.get("FAKE_SWIFT_STEPS", "10,20").split(",")]
    for step in steps:
        ckpt = run / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "adapter_config.json").write_text("{}")
        (ckpt / "adapter_model.safetensors").write_text("")
        state = {"global_step": step, "best_model_checkpoint": str(run / f"checkpoint-{steps[0]}")}
        (ckpt / "trainer_state.json").write_text(json.dumps(state))
    (run / "last-checkpoint").symlink_to(run / f"checkpoint-{steps[-1]}")
    last = {"last_model_checkpoint": str(run / f"checkpoint-{steps[-1]}"), "global_step": steps[-1]}
    logged = logged_steps()
    rows = [{"loss": round(3.0 / i, 6), "global_step/max_steps": f"{i}/{logged}"} for i in range(1, logged + 1)]
    rows = rows or [{"loss": 1.0, "global_step/max_steps": "1/2"}]
    (run / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, last]))
    if logged and option(argv, "--swanlab_mode") == "local":
        log_to_swanlab(argv, rows)
    time.sleep(float(os.environ.get("FAKE_SWIFT_HOLD", "0")))


def log_to_swanlab(argv, rows):
    import swanlab

    swanlab.init(project=option(argv, "--swanlab_project"), name=option(argv, "--swanlab_exp_name"), mode="local")
    for step, row in enumerate(rows, 1):
        swanlab.log({"train/loss": row["loss"]}, step=step)
        time.sleep(float(os.environ.get("FAKE_SWIFT_STEP_S", "0")))  # a run that is still training
    swanlab.finish()


def answer(argv, text):
    rows = [json.loads(line) for line in Path(option(argv, "--val_dataset")).read_text().splitlines() if line.strip()]
    Path(option(argv, "--result_path")).write_text("".join(json.dumps(r | {"response": text}) + "\n" for r in rows))


def serve(argv):
    from http.server import BaseHTTPRequestHandler, HTTPServer

    port = int(option(argv, "--port", "8000"))
    name = option(argv, "--served_model_name", "fake-model")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": name, "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    delay = float(os.environ.get("FAKE_SWIFT_SERVE_DELAY", "0.5"))
    time.sleep(delay)
    server = HTTPServer((option(argv, "--host", "127.0.0.1"), port), Handler)
    print(f"INFO: Uvicorn running on http://127.0.0.1:{port}", flush=True)
    signal.signal(signal.SIGINT, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main():
    argv = sys.argv[1:]
    log = Path(os.environ["FAKE_SWIFT_LOG"])
    with log.open("a") as f:
        f.write(
            json.dumps(
                {
                    "argv": argv,
                    "env": dict(os.environ),
                    "pid": os.getpid(),
                    "pgid": os.getpgid(0),
                    "sid": os.getsid(0),
                    "cwd": os.getcwd(),
                }
            )
            + "\n"
        )
    mode = os.environ.get("FAKE_SWIFT_MODE", "exit:0")
    if mode.startswith("exit:"):
        if argv[:1] == ["sft"]:
            lay_out_training(argv)
        if argv[:1] == ["infer"] and "FAKE_SWIFT_ANSWER" in os.environ:
            answer(argv, os.environ["FAKE_SWIFT_ANSWER"].replace("{adapters}", option(argv, "--adapters", "none")))
        sys.exit(int(mode.split(":")[1]))
    if mode == "train":
        lay_out_training(argv)
    elif mode.startswith("wait:"):
        Path(f"{log}.started").write_text(json.dumps({"pid": os.getpid()}))
        while not Path(f"{log}.go").exists():
            time.sleep(0.05)
        sys.exit(int(mode.split(":")[1]))
    elif mode == "serve":
        serve(argv)
    elif mode == "elastic":
        ignores = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.2)"
        trainer = subprocess.Popen([sys.executable, "-c", ignores], start_new_session=True)
        attempt = os.environ.get("SLURM_RESTART_COUNT", "0")
        Path(f"{log}.trainer-{attempt}").write_text(json.dumps({"trainer": trainer.pid}))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
        while True:
            time.sleep(0.1)
    elif mode == "sleep":
        child = subprocess.Popen(["sleep", "300"])

        def stop(signum, _frame):
            Path(f"{log}.signal").write_text(signal.Signals(signum).name)
            sys.exit(128 + signum)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGHUP, stop)
        if argv[:1] == ["sft"]:
            print("Train:   0%|          | 0/20", flush=True)  # as swift's progress bar starts (a verdict reads it)
        Path(f"{log}.started").write_text(json.dumps({"pid": os.getpid(), "grandchild": child.pid}))
        while True:
            time.sleep(0.1)


if __name__ == "__main__":
    main()
