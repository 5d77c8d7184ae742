"""Raw boto3 multipart transfer: the no-encryption ceiling for the same S3 server.

Run by the harness as a subprocess so that its CPU time and memory are measured like
every other client's::

    python -m benchmarks.boto3_transfer upload   --endpoint URL --bucket B \
        --part-size N --concurrency N --prefix P FILE...
    python -m benchmarks.boto3_transfer download --endpoint URL --bucket B \
        --part-size N --concurrency N --prefix P --output-dir D NAME...

All files go through one s3transfer ``TransferManager`` (as ``aws s3 cp --recursive``
does), so several files are in flight at once, sharing ``--concurrency`` requests.
Credentials come from the usual AWS_* variables (any value works for SeaweedFS and moto).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config


def _client(endpoint: str, concurrency: int):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            max_pool_connections=max(10, concurrency + 2),
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Upload or download files; print one line per file; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("direction", choices=["upload", "download"])
    parser.add_argument("--endpoint", required=True, help="S3 endpoint URL")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="", help="key prefix")
    parser.add_argument("--part-size", type=int, required=True, help="multipart chunk size")
    parser.add_argument("--concurrency", type=int, required=True, help="requests in flight")
    parser.add_argument("--output-dir", type=Path, help="download target folder")
    parser.add_argument("items", nargs="+", help="files to upload, or key names to download")
    args = parser.parse_args(argv)

    client = _client(args.endpoint, args.concurrency)
    if args.direction == "upload":
        try:
            client.head_bucket(Bucket=args.bucket)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=args.bucket)
    config = TransferConfig(
        multipart_threshold=args.part_size,
        multipart_chunksize=args.part_size,
        max_concurrency=args.concurrency,
        use_threads=True,
    )
    futures = []
    with create_transfer_manager(client, config) as manager:
        for item in args.items:
            if args.direction == "upload":
                path = Path(item)
                key = args.prefix + path.name
                futures.append((key, manager.upload(str(path), args.bucket, key)))
            else:
                if args.output_dir is None:
                    parser.error("download needs --output-dir")
                key = args.prefix + item
                target = args.output_dir / item
                futures.append((key, manager.download(args.bucket, key, str(target))))
        failed = 0
        for key, future in futures:
            try:
                future.result()
                print(f"ok {key}")
            except Exception as exc:  # report every file, then fail
                failed += 1
                print(f"FAILED {key}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
