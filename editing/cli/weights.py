"""`i2edit weights list|download|verify|make-fixtures`: see which weights are present, fetch, check, fake them."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="list, download and verify network weights; write test weights")
    commands = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    def weights_dir_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--weights-dir", help="where weights live (default: $I2EDIT_WEIGHTS_DIR, else ~/.cache/i2edit/weights)")

    p = commands.add_parser("list", help="show each file of a weight set: present or missing, and where it looked")
    weights_dir_option(p)
    p.add_argument("--set", default="ffhq", help="ffhq (public files, default), demo, or a directory / manifest")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("download", help="download public weights (resumes; checks checksums where published)")
    weights_dir_option(p)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="registry names (default: the missing files an edit needs); see `i2edit weights list`")
    p.add_argument("--all", action="store_true", help="all missing files of the ffhq set, metrics backbones too")
    p.add_argument("--url", help="download NAME from this URL instead (one NAME only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_download)

    p = commands.add_parser("verify", help="check sizes and sha256 of present files against the published values")
    weights_dir_option(p)
    p.add_argument("names", nargs="*", metavar="ROLE_OR_NAME", help="only these roles or registry names")
    p.add_argument("--set", default="ffhq", help="ffhq (default), demo, or a directory / manifest")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser("make-fixtures", help="write small random networks in the public formats (offline tests)")
    p.add_argument("--out", required=True, help="output directory (gets a manifest.json: use it as a weight set)")
    p.add_argument("--size", type=int, default=64, help="generator resolution, a power of two 32..1024 (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_make_fixtures)


def _row(role: str, entry) -> dict:
    present = entry.path.is_file()
    return {
        "role": role,
        "name": entry.record.name if entry.record else None,
        "file": entry.path.name,
        "status": "present" if present else "missing",
        "size": entry.path.stat().st_size if present else entry.size,
        "path": str(entry.path),
        "source": entry.record.sources[0] if entry.record else None,
    }


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "-")) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    for r in rows:
        lines.append("  ".join(str(r.get(c) if r.get(c) is not None else "-").ljust(widths[c]) for c in columns))
    return "\n".join(lines)


def cmd_list(args) -> int:
    from editing.weights.registry import FFHQ_SET, REGISTRY
    from editing.weights.weight_set import WeightFile, resolve_set

    ws = resolve_set(args.set, args.weights_dir)
    if ws.name == "ffhq":  # every registry file of the set, alternatives included
        rows = [_row(role, WeightFile(role, ws.root / REGISTRY[n].file_name, record=REGISTRY[n]))
                for role, names in FFHQ_SET.items() for n in names]
    else:
        rows = [_row(role, entry) for role, entry in ws.files.items()]
    if args.json:
        print(json.dumps({"set": ws.name, "root": str(ws.root), "origin": ws.origin, "files": rows}, indent=2))
        return 0
    print(f"weight set {ws.name}: {ws.root} (from {ws.origin})")
    print(_table(rows, ["role", "name", "file", "status", "size"]))
    missing = ws.missing()
    if missing:
        hint = "`i2edit weights download`" if ws.name == "ffhq" else "the set's instructions"
        print(f"missing for editing: {', '.join(missing)} (get them with {hint})")
    return 0


def cmd_download(args) -> int:
    from editing.weights.download import download
    from editing.weights.registry import FFHQ_SET, REGISTRY, get_record, weights_dir
    from editing.weights.weight_set import ffhq_set

    directory = weights_dir(args.weights_dir)
    if args.url and len(args.names) != 1:
        raise ValueError("--url needs exactly one NAME")
    if args.names:
        records = [get_record(n) for n in args.names]
    else:
        ws = ffhq_set(args.weights_dir)
        roles = list(FFHQ_SET) if args.all else ws.missing()
        records = [REGISTRY[FFHQ_SET[role][0]] for role in roles if not ws.has(role)]
        if not records:
            print(f"nothing to download: {directory} has every file needed")
            return 0
    for record in records:
        target = directory / record.file_name
        if target.is_file() and not args.url:
            print(f"{record.name}: already present at {target}")
            continue
        path = download(record, directory, url=args.url, progress=not args.quiet)
        print(f"{record.name}: saved {path}")
    return 0


def cmd_verify(args) -> int:
    from editing.weights.weight_set import resolve_set

    ws = resolve_set(args.set, args.weights_dir)
    wanted = set(args.names)
    rows, failed = [], False
    for role, entry in ws.files.items():
        name = entry.record.name if entry.record else None
        if wanted and role not in wanted and name not in wanted:
            continue
        result = entry.check()
        if result.status == "mismatch" or (result.status == "missing" and wanted):
            failed = True
        rows.append({"role": role, "name": name, "file": entry.path.name, "status": result.status,
                     "detail": result.detail, "path": str(entry.path)})
    unknown = wanted - {r["role"] for r in rows} - {r["name"] for r in rows}
    if unknown:
        raise ValueError(f"weight set {ws.name} has no role or file named {', '.join(sorted(unknown))}")
    if args.json:
        print(json.dumps({"set": ws.name, "root": str(ws.root), "files": rows}, indent=2))
    else:
        print(f"weight set {ws.name}: {ws.root}")
        print(_table(rows, ["role", "file", "status", "detail"]))
    return 1 if failed else 0


def cmd_make_fixtures(args) -> int:
    from editing.weights.fixtures import make_fixtures

    ws = make_fixtures(args.out, size=args.size, seed=args.seed)
    print(f"wrote fixture weights for a {args.size} px generator to {ws.root}:")
    for role, entry in ws.files.items():
        print(f"  {role:10s} {entry.path.name} ({entry.size} bytes)")
    print(f"use them with --weights-dir {ws.root} (or resolve_set({str(ws.root)!r}))")
    return 0
