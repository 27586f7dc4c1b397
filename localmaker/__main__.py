"""``python -m localmaker``: serve SageMaker, SageMaker Runtime, CloudWatch Logs and S3 on one port."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m localmaker", description=__doc__)
    ap.add_argument("--host", default=os.environ.get("LOCALMAKER_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("LOCALMAKER_PORT", "4566")), help="0 picks a free port")
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LOCALMAKER_HOME", ".localmaker")))
    ap.add_argument(
        "--images", type=Path, action="append", default=[], metavar="FILE",
        help="images manifest (repeatable; later files take precedence)",
    )
    ap.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    ap.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    ap.add_argument("--health-check-timeout", type=float, default=120.0, help="seconds for GET /ping to succeed")
    ap.add_argument(
        "--allow-host", action="append", default=_env_list("LOCALMAKER_ALLOW_HOSTS"), metavar="NAME",
        help="also serve requests whose Host header is NAME (repeatable; env LOCALMAKER_ALLOW_HOSTS, comma-separated). "
        "Loopback addresses and localhost are always served; other names are refused (DNS rebinding).",
    )
    ap.add_argument(
        "--cors-origin", action="append", default=_env_list("LOCALMAKER_CORS_ORIGINS"), metavar="ORIGIN",
        help="let web pages from ORIGIN (scheme://host[:port]) call localmaker (repeatable; env "
        "LOCALMAKER_CORS_ORIGINS, comma-separated). By default every request with an Origin header is refused.",
    )
    ap.add_argument("--max-instances-per-job", type=_positive_int, default=8, metavar="N",
                    help="InstanceCount quota of one training, processing, transform or tuning trial job (default 8)")
    ap.add_argument("--max-instances-per-variant", type=_positive_int, default=8, metavar="N",
                    help="InitialInstanceCount quota of one endpoint variant (default 8)")
    ap.add_argument("--read-timeout", type=float, default=60.0, metavar="SECONDS",
                    help="drop a request connection that sends nothing for this long (default 60)")
    ap.add_argument(
        "--fault", action="append", default=_env_list("LOCALMAKER_FAULTS"), metavar="OPERATION=CODE[:COUNT]",
        help="answer the first COUNT (default 1) calls of a SageMaker or CloudWatch Logs operation with the AWS "
        "error CODE, e.g. ListModelPackages=ThrottlingException:1, to test retries (repeatable; env "
        "LOCALMAKER_FAULTS, comma-separated). Off by default.",
    )
    ap.add_argument("--log-level", default=os.environ.get("LOCALMAKER_LOG_LEVEL", "WARNING"))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from .context import Settings
    from .images import ManifestError
    from .server import LocalMaker

    try:
        lm = LocalMaker(
            home=args.home,
            host=args.host,
            port=args.port,
            images=args.images,
            region=args.region,
            settings=Settings(
                health_check_timeout=args.health_check_timeout,
                read_timeout=args.read_timeout,
                max_instances_per_job=args.max_instances_per_job,
                max_instances_per_variant=args.max_instances_per_variant,
                allow_hosts=tuple(args.allow_host),
                cors_origins=tuple(args.cors_origin),
                faults=tuple(args.fault),
            ),
            allow_remote=args.allow_remote,
        )
    except (ValueError, ManifestError) as exc:
        print(f"localmaker: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # the home (or something in it) cannot be used
        print(f"localmaker: error: cannot use home {str(args.home)!r}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        lm.start()
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and lm.ctx.endpoint_url == "":
            print(f"localmaker: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        else:  # restoring S3 or failing interrupted jobs needs the home's disk (full, read-only, ...)
            print(f"localmaker: error: cannot restore the state in home {str(args.home)!r}: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"localmaker: error: cannot restore the state in home {str(args.home)!r}: {exc}", file=sys.stderr)
        return 2
    print(f"localmaker ready on {lm.url} (home {lm.home})", flush=True)
    stop.wait()
    lm.stop()
    print("localmaker stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
