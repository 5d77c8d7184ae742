"""core/journal.py: upload journals round-trip, survive torn lines, never hold the secret in the clear."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from tests.unit.connector.test_conn_upload import keep_mtime

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.sealed import SealedBoxError
from ghga_connector.core.journal import (
    JOURNAL_VERSION,
    FileIdentity,
    JournalStore,
    PartRecord,
    UploadJournal,
    seal_secret,
)
from ghga_connector.errors import OutputError

SECRET = bytes(range(32))


def _journal(source: Path, keys: KeyPair, alias: str = "a.bam") -> UploadJournal:
    return UploadJournal(
        box_id="box-1",
        alias=alias,
        file_id="file-1",
        storage_alias="hub",
        path=str(source.resolve()),
        identity=FileIdentity.of(source),
        part_size=5_245_120,
        envelope=b"crypt4gh" + bytes(116),
        sealed_secret=seal_secret(SECRET, keys),
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "a.bam"
    path.write_bytes(b"x" * 1000)
    return path


def test_round_trip(tmp_path: Path, source: Path, user_keys: KeyPair) -> None:
    store = JournalStore(tmp_path / "state")
    journal = _journal(source, user_keys)
    store.create(journal)
    store.add_part(journal, PartRecord(1, "m1", "s1", "p1"))
    store.add_part(journal, PartRecord(2, "m2", "s2", "p2"))
    loaded = store.load("box-1", "a.bam")
    assert loaded is not None
    assert loaded.header() == journal.header()
    assert loaded.parts == {1: PartRecord(1, "m1", "s1", "p1"), 2: PartRecord(2, "m2", "s2", "p2")}
    assert loaded.secret(user_keys) == SECRET
    assert loaded.size == 1000
    assert loaded.matches_file(source)
    assert [j.alias for j in store.all()] == ["a.bam"]
    assert store.load("box-1", "b.bam") is None
    assert store.load("box-2", "a.bam") is None


@pytest.mark.posix_only  # symbolic links
def test_a_part_is_never_appended_through_a_planted_link(
    tmp_path: Path, source: Path, user_keys: KeyPair
) -> None:
    """The journal replaced by a link after create(): the append refuses (O_NOFOLLOW)."""
    store = JournalStore(tmp_path / "state")
    journal = _journal(source, user_keys)
    store.create(journal)
    path = next((tmp_path / "state" / "uploads").glob("*.jsonl"))
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path.unlink()
    path.symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        store.add_part(journal, PartRecord(1, "m1", "s1", "p1"))
    assert victim.read_text() == "precious\n"
    # and a missing journal is not created by the append
    path.unlink()
    with pytest.raises(FileNotFoundError):
        store.add_part(journal, PartRecord(2, "m2", "s2", "p2"))
    assert not path.exists()


def test_journals_are_private_and_hold_no_secret(
    tmp_path: Path, source: Path, user_keys: KeyPair
) -> None:
    store = JournalStore(tmp_path / "state")
    store.create(_journal(source, user_keys))
    (path,) = (tmp_path / "state" / "uploads").glob("*.jsonl")
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert SECRET.hex() not in text
    assert json.loads(text.splitlines()[0])["version"] == JOURNAL_VERSION


def test_another_key_cannot_open_the_secret(
    tmp_path: Path, source: Path, user_keys: KeyPair, other_keys: KeyPair
) -> None:
    journal = _journal(source, user_keys)
    with pytest.raises(SealedBoxError):
        journal.secret(other_keys)


def test_a_torn_last_line_is_ignored(tmp_path: Path, source: Path, user_keys: KeyPair) -> None:
    store = JournalStore(tmp_path / "state")
    journal = _journal(source, user_keys)
    store.create(journal)
    store.add_part(journal, PartRecord(1, "m1", "s1", "p1"))
    (path,) = (tmp_path / "state" / "uploads").glob("*.jsonl")
    with path.open("a") as handle:
        handle.write('{"part": 2, "md5": "m')
    loaded = store.load("box-1", "a.bam")
    assert loaded is not None and list(loaded.parts) == [1]


@pytest.mark.parametrize(
    "damage",
    [
        lambda head: {**head, "version": JOURNAL_VERSION - 1},
        lambda head: {k: v for k, v in head.items() if k != "ctime_ns"},
        lambda head: {**head, "size": "many"},
    ],
)
def test_an_unreadable_header_means_no_journal(
    tmp_path: Path, source: Path, user_keys: KeyPair, damage: object
) -> None:
    store = JournalStore(tmp_path / "state")
    store.create(_journal(source, user_keys))
    (path,) = (tmp_path / "state" / "uploads").glob("*.jsonl")
    head = json.loads(path.read_text().splitlines()[0])
    path.write_text(json.dumps(damage(head)) + "\n")  # type: ignore[operator]
    assert store.load("box-1", "a.bam") is None
    assert store.all() == []


def test_create_replaces_and_remove_forgets(
    tmp_path: Path, source: Path, user_keys: KeyPair
) -> None:
    store = JournalStore(tmp_path / "state")
    first = _journal(source, user_keys)
    store.create(first)
    store.add_part(first, PartRecord(1, "m1", "s1", "p1"))
    store.create(_journal(source, user_keys))
    loaded = store.load("box-1", "a.bam")
    assert loaded is not None and loaded.parts == {}
    store.remove("box-1", "a.bam")
    store.remove("box-1", "a.bam")  # twice is fine
    assert store.load("box-1", "a.bam") is None
    assert store.all() == []
    assert JournalStore(tmp_path / "nothing").all() == []


def test_matches_file_needs_the_same_path_and_identity(
    tmp_path: Path, source: Path, user_keys: KeyPair
) -> None:
    journal = _journal(source, user_keys)
    assert journal.matches_file(source)
    copy = tmp_path / "copy.bam"
    copy.write_bytes(source.read_bytes())
    assert not journal.matches_file(copy)  # another path
    moved = _journal(source, user_keys)
    moved.path = str(copy.resolve())
    assert not moved.matches_file(source)  # same identity, another recorded path
    before = source.stat()
    source.write_bytes(b"y" * 1000)
    keep_mtime(source, before)
    assert not journal.matches_file(source)  # same size and mtime, new ctime
    source.unlink()
    assert not journal.matches_file(source)


def test_file_identity_reads_stat(source: Path) -> None:
    stat_result = source.stat()
    assert FileIdentity.of(source) == FileIdentity(
        stat_result.st_size, stat_result.st_mtime_ns, stat_result.st_ctime_ns, stat_result.st_ino
    )


# --- foreign journals and the state folder's mode ----------------------------------------


def _plant(path: Path, how: str) -> None:
    """Make the file at ``path`` look like someone else's (root may chown)."""
    if how == "other owner":
        os.chown(path, 4242, 4242)
    elif how == "readable by others":
        path.chmod(0o644)
    else:  # a hard link: the same file reachable from elsewhere
        os.link(path, path.with_name("elsewhere"))


@pytest.mark.parametrize("how", ["other owner", "readable by others", "hard link"])
def test_a_journal_that_is_not_the_users_own_is_refused(
    tmp_path: Path, source: Path, user_keys: KeyPair, how: str
) -> None:
    if how == "other owner" and os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    store = JournalStore(tmp_path / "state")
    store.create(_journal(source, user_keys))
    (path,) = (tmp_path / "state" / "uploads").glob("*.jsonl")
    _plant(path, how)
    with pytest.raises(OutputError, match="Refusing to continue") as info:
        store.load("box-1", "a.bam")
    assert str(path) in info.value.message
    assert store.all() == []  # status leaves it out


def test_a_named_state_folder_keeps_its_mode(
    tmp_path: Path, source: Path, user_keys: KeyPair
) -> None:
    """A team's shared state folder (GHGA_CONNECTOR_STATE_DIR) is never chmod'ed."""
    shared = tmp_path / "project" / "state"
    shared.mkdir(parents=True)
    shared.chmod(0o2775)
    warnings: list[str] = []
    store = JournalStore(shared, warn=warnings.append)
    store.create(_journal(source, user_keys))
    assert stat.S_IMODE(shared.stat().st_mode) == 0o2775
    uploads = shared / "uploads"
    assert stat.S_IMODE(uploads.stat().st_mode) == 0o700  # new: private
    (journal,) = uploads.glob("*.jsonl")
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert len(warnings) == 1 and "can be listed by every user" in warnings[0]
    assert str(shared) in warnings[0]
    uploads.chmod(0o750)  # the user widened it: it stays so
    JournalStore(shared).create(_journal(source, user_keys, alias="b.bam"))
    assert stat.S_IMODE(uploads.stat().st_mode) == 0o750


def test_new_state_folders_are_private_whatever_the_umask(
    tmp_path: Path, source: Path, user_keys: KeyPair
) -> None:
    old = os.umask(0o022)
    try:
        JournalStore(tmp_path / "a" / "b").create(_journal(source, user_keys))
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "uploads"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_a_team_state_folder_gives_each_user_a_journal_folder_of_their_own(
    tmp_path: Path, source: Path, user_keys: KeyPair
) -> None:
    """Another user's private uploads/ folder in a shared state folder locks nobody out."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder to another user")
    shared = tmp_path / "state"
    (shared / "uploads").mkdir(parents=True)
    (shared / "uploads").chmod(0o700)
    shared.chmod(0o2770)
    for folder in (shared, shared / "uploads"):
        os.chown(folder, 4242, 4242)  # the colleague who used it first
    store = JournalStore(shared)
    store.create(_journal(source, user_keys))
    mine = shared / f"uploads-{os.geteuid()}"
    assert [p.parent for p in mine.glob("*.jsonl")] == [mine]
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    assert stat.S_IMODE(shared.stat().st_mode) == 0o2770
    assert list((shared / "uploads").iterdir()) == []
    assert store.load("box-1", "a.bam") is not None
