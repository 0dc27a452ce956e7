"""The npm cache a release carries is made reproducible: npm's logs left out, the times of
its index set to SOURCE_DATE_EPOCH, each index line still `sha1(json)<TAB>json`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from toolchain.localenv import node


def _line(doc: dict[str, object]) -> str:
    text = json.dumps(doc, separators=(",", ":"))
    return f"\n{hashlib.sha1(text.encode()).hexdigest()}\t{text}"


def test_index_times_and_dates_follow_the_epoch_and_logs_go(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bucket = cache / "_cacache" / "index-v5" / "ab" / "cd" / "entry"
    bucket.parent.mkdir(parents=True)
    (cache / "_logs").mkdir()
    (cache / "_logs" / "2026-debug-0.log").write_text("verbose cli /home/builder/x\n")
    key = "make-fetch-happen:request-cache:https://registry.npmjs.org/x/-/x-1.0.0.tgz"
    older = {"key": key, "integrity": "sha512-a", "time": 1, "size": 3}
    newer = {
        "key": key,
        "integrity": "sha512-b",
        "time": 1795319500649,
        "size": 3,
        "metadata": {"time": 1795319500619, "resHeaders": {"date": "Sun, 22 Nov 2026 GMT"}},
    }
    bucket.write_text(_line(older) + _line(newer) + "\nbroken\tline")
    node._reproducible(cache, 1700000000)
    assert sorted(p.name for p in cache.iterdir()) == ["_cacache"]
    lines = bucket.read_text().split("\n")[1:]
    assert len(lines) == 1  # the last entry of the key wins; a torn line is dropped
    digest, text = lines[0].split("\t")
    assert hashlib.sha1(text.encode()).hexdigest() == digest
    doc = json.loads(text)
    assert doc["integrity"] == "sha512-b" and doc["time"] == 1700000000000
    assert doc["metadata"]["time"] == 1700000000000
    assert doc["metadata"]["resHeaders"]["date"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    first = bucket.read_bytes()
    node._reproducible(cache, 1700000000)
    assert bucket.read_bytes() == first  # the same epoch: the same bytes
    node._reproducible(cache, 1600000000)
    assert json.loads(bucket.read_text().split("\t")[1])["time"] == 1600000000000
