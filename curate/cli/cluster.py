"""Running on a Ray cluster: `curate submit` (Ray's job submission API); `curate verify` lives in curate.output.verify.

`curate submit PIPELINE --address http://HEAD:8265` validates the pipeline here, uploads the working directory (your
pipeline file and your own stage modules) through the job's runtime environment, runs `curate run` on the cluster,
streams its logs and exits with the job's exit status. The plain Ray way works too:
`ray job submit --address http://HEAD:8265 --working-dir . -- curate run PIPELINE`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def _entrypoint(args: argparse.Namespace, pipeline_arg: str, input_path: str | None, output_path: str) -> str:
    parts = ["curate", "run", pipeline_arg, "--output", output_path]
    if input_path:
        parts += ["--input", input_path]
    for item in args.overrides:
        parts += ["--set", item]
    if args.overwrite:
        parts.append("--overwrite")
    return shlex.join(parts)


def _absolute(path: str) -> str:
    """Local paths must mean the same on every node: make them absolute (they must be on a shared filesystem)."""
    if "://" in path or path.startswith("sample:"):
        return path
    return os.path.abspath(path)


def cmd_submit(args: argparse.Namespace) -> int:
    from curate import config

    if not args.address:
        raise CurateError("no cluster address", hint="pass --address http://HEAD:8265 or set RAY_API_SERVER_ADDRESS")
    # Validate here first: a typo should cost seconds, not a cluster round trip. The input is checked on the
    # cluster, where it must be reachable (a shared filesystem or object storage).
    pipeline = config.load(args.pipeline, args.overrides, args.input, args.output, check_input=False)
    working_dir = Path(args.working_dir).resolve()
    pfile = Path(pipeline.file).resolve()
    if pfile.is_relative_to(config.bundled_dir().resolve()):
        pipeline_arg = pfile.name  # bundled: the cluster's curate has it too
    elif pfile.is_relative_to(working_dir):
        pipeline_arg = str(pfile.relative_to(working_dir))
    else:
        raise InputError(
            f"pipeline file {pfile} is outside the working directory {working_dir} that is shipped to the cluster",
            hint="run from the pipeline's directory or pass --working-dir",
        )
    path = pipeline.input.path
    input_path = _absolute(path) if isinstance(path, str) else None
    entrypoint = _entrypoint(args, pipeline_arg, input_path, pipeline.output.path)
    runtime_env: dict[str, Any] = {"working_dir": str(working_dir)}
    if args.pip:
        runtime_env["pip"] = list(args.pip)
    if args.py_module:
        runtime_env["py_modules"] = [str(Path(m).resolve()) for m in args.py_module]
    _use_token_if_available()  # before Ray reads its auth settings (it caches them on first use)
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(args.address)
    except Exception as e:  # connection refused, wrong scheme, no dashboard on the head
        raise CurateError(
            f"cannot reach the Ray job API at {args.address}: {e}",
            hint="give the head's dashboard address, e.g. http://HEAD:8265 (ray start --head --dashboard-host 0.0.0.0)",
        ) from None
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=args.job_id)
    print(f"submitted job {job_id}: {entrypoint}", file=sys.stderr)
    if args.no_wait:
        print(job_id)
        return 0
    try:
        asyncio.run(_stream_logs(client, job_id))
    except KeyboardInterrupt:
        print(f"stopped following job {job_id}; it keeps running (ray job stop {job_id} to stop it)", file=sys.stderr)
        return 130
    status = _wait(client, job_id)
    info = client.get_job_info(job_id)
    code = getattr(info, "driver_exit_code", None)
    print(f"job {job_id}: {status}" + (f" (exit code {code})" if code is not None else ""), file=sys.stderr)
    if status == "SUCCEEDED":
        return 0
    return int(code) if isinstance(code, int) and code > 0 else 1


def _use_token_if_available() -> None:
    """Ray clusters started with `ray start` enable token authentication by default (Ray >= 2.59), but clients
    send the token only when RAY_AUTH_MODE=token. If a token is at hand and the mode is unset, send it."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if (
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or Path("~/.ray/auth_token").expanduser().is_file()
    ):
        os.environ["RAY_AUTH_MODE"] = "token"


async def _stream_logs(client: Any, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        sys.stdout.write(lines)
        sys.stdout.flush()


def _wait(client: Any, job_id: str, timeout_s: float = 60.0) -> str:
    deadline = time.time() + timeout_s
    while True:
        status = str(client.get_job_status(job_id)).rsplit(".", 1)[-1]
        if status in TERMINAL or time.time() > deadline:
            return status
        time.sleep(0.5)


def register_cli(sub: Any) -> None:
    from curate.cli.args import add_pipeline_args

    p = sub.add_parser("submit", help="run a pipeline on a Ray cluster through the job submission API")
    add_pipeline_args(p)
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"),
        help="the head's job API, e.g. http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS / RAY_ADDRESS)",
    )
    p.add_argument("--working-dir", default=".", help="directory shipped to the cluster (default: the current one)")
    p.add_argument("--pip", action="append", default=[], help="a pip requirement installed for the job (repeatable)")
    p.add_argument("--py-module", action="append", default=[], help="a local package directory shipped to the job")
    p.add_argument("--job-id", help="submission id (default: chosen by Ray)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in the output directory")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return without following the logs")
    p.set_defaults(fn=cmd_submit)
