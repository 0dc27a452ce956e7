"""The operator's commands about signed releases: plugins.verify, and what
plugins.install --check and plugins.info say of a release."""

from __future__ import annotations

import json

from toolchain.cli.command import EXIT_FAILURE, error, execute, parser, warnings_to_stderr

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any


def signature_line(signed: dict[str, Any]) -> str:
    """`trust.describe`'s verdict in one line."""
    if signed["state"] in ("unsigned", "invalid"):
        return f"{signed['state']}" + (f": {signed['problem']}" if "problem" in signed else "")
    who = signed["principals"] or "unknown signer"
    return f"{signed['state']}, signed by {who} ({signed['key']})"


def verify_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.verify`."""
    from pathlib import Path

    p = parser(
        "plugins.verify",
        "Check a .plugin file's signature and every file it covers against this runtime's "
        "allowed_signers; exit 1 unless it is signed by a trusted, unrevoked key.",
    )
    p.add_argument("file", metavar="FILE.plugin", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def body(args: argparse.Namespace) -> int:
        import tempfile

        from toolchain.artifact import signature
        from toolchain.artifact.extract import extract
        from toolchain.core.layout import Runtime
        from toolchain.installer import trust

        warnings_to_stderr()
        # Unpacked as an install unpacks it: every member checked against the manifest,
        # nothing else accepted; the signature is then checked on what was unpacked.
        with tempfile.TemporaryDirectory(prefix="plugins-verify-") as scratch:
            tree = Path(scratch) / "tree"
            got = extract(args.file, tree)
            docs = signature.documents_of_tree(tree)
        signed = trust.describe(docs, str(args.file), Runtime.current())
        if signed["state"] not in ("unsigned", "invalid"):  # what it covers, byte for byte
            signed["files"] = len(got.manifest.get("files", []))
        if args.json:
            print(json.dumps({"file": str(args.file), **signed}, indent=1))
        else:
            print(f"{args.file}: {signature_line(signed)}")
            for key, value in signed.get("covers", {}).items():
                print(f"  {key}: {value}")
            if "files" in signed:
                print(f"  files: {signed['files']} match the signed manifest")
        if signed["state"] != "trusted":
            error(f"{args.file}: {signed['state']}: not installable under require")
            return EXIT_FAILURE
        return 0

    return execute(p, body, argv)


def preflight(args: argparse.Namespace, strategy: Any) -> int:
    """`plugins.install --check`: print the answer, exit 1 when something would refuse."""
    from toolchain.core.layout import Runtime
    from toolchain.installer import lock, preflight

    with lock.locked(Runtime.current()) as rt:
        doc = preflight.check(rt, args.files, strategy=strategy, new_name=args.new_name,
                              repository_dir=args.repository)  # fmt: skip
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        for found in doc["files"]:
            print(f"{found['file']}: {'ok' if found['ok'] else 'would be refused'}")
            for row in found["checks"]:
                print(f"  {row['check']}: {'ok' if row['ok'] else 'NO'}: {row['detail']}")
        for row in doc["checks"]:
            print(f"{row['check']}: {'ok' if row['ok'] else 'NO'}: {row['detail']}")
    if not doc["ok"]:
        error("would not install here (see above)")
        return EXIT_FAILURE
    return 0
