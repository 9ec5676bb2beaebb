"""placed.json: what ``place`` records beside a store, and what it never overwrites."""
import json
import logging

from analysis.placements import (PLACED_FILE, Placed, describe_placed, forget_placed, read_placed,
                                 write_placed)

DAMAGED = b'[{"path": "/my/own.wav", "split": "test", "x": 1.5,'  # cut off mid-write


def test_placed_sounds_round_trip(tmp_path):
    placed = [Placed("/a.wav", "test", x=1.0, y=2.0, family="bass", probability=0.5),
              Placed("/b.wav", "train", adjustments=["downmixed 2 channels"])]
    write_placed(tmp_path, placed)
    assert read_placed(tmp_path)[0] == placed[0]
    assert read_placed(tmp_path)[1].adjustments == ["downmixed 2 channels"]
    forget_placed(tmp_path, "train")
    assert [p.path for p in read_placed(tmp_path)] == ["/a.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".placed.json.lock", PLACED_FILE]


def test_two_changes_of_placed_json_at_once_keep_both(tmp_path):
    import threading
    import time
    from analysis.placements import updating_placed
    write_placed(tmp_path, [Placed("/old.wav", "test")])

    def add(name):  # read, change and write, slowly, as a place of many sounds
        with updating_placed(tmp_path):
            placed = read_placed(tmp_path)
            time.sleep(0.3)
            write_placed(tmp_path, placed + [Placed(name, "test")])
    threads = [threading.Thread(target=add, args=(f"/{n}.wav",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.path for p in read_placed(tmp_path)) == ["/0.wav", "/1.wav", "/old.wav"]


def test_inspect_s_lines_count_the_sounds_on_each_map_and_list_the_first(tmp_path):
    assert describe_placed(tmp_path) == []
    write_placed(tmp_path, [Placed(f"/{n}.wav", "train" if n < 3 else "test", family="bass",
                                   probability=0.25) for n in range(12)])
    lines = describe_placed(tmp_path, mapped=["test"], most=2)  # build --add removed train's
    assert lines == [f"== placed: {tmp_path / PLACED_FILE}  9 on test's map, 3 on train's map "
                     f"(gone: run tsne, then place)",
                     "    /0.wav: train, bass (0.25)", "    /1.wav: train, bass (0.25)",
                     "    ... and 10 more (placed.json lists them)"]


def test_a_damaged_placed_json_is_kept_aside_byte_for_byte(tmp_path, caplog):
    path = tmp_path / PLACED_FILE
    path.write_bytes(DAMAGED)
    with caplog.at_level(logging.WARNING, logger="analysis.placements"):
        assert read_placed(tmp_path) == []
        forget_placed(tmp_path, "test")  # nothing to forget: the file stays as it is
        assert path.read_bytes() == DAMAGED
        write_placed(tmp_path, [Placed("/new.wav", "test")])
    aside, = tmp_path.glob(f"{PLACED_FILE}.damaged-*")
    assert aside.read_bytes() == DAMAGED
    assert [p.path for p in read_placed(tmp_path)] == ["/new.wav"]
    *ignored, kept = [r.getMessage() for r in caplog.records]
    ignored, = set(ignored)  # by read_placed and forget_placed
    assert ignored.startswith(f"{path}: not a list of placed sounds (") and "ignored" in ignored
    assert kept.startswith(f"{path}: not a list of placed sounds (")
    assert kept.endswith(f"; kept as {aside.name}")


def test_every_damaged_placed_json_is_kept_under_a_name_of_its_own(tmp_path):
    path = tmp_path / PLACED_FILE
    damaged = [DAMAGED, b"\xff\xfe not text", json.dumps({"not": "a list"}).encode()]
    for text in damaged:  # within the same second: the names must still differ
        path.write_bytes(text)
        write_placed(tmp_path, [])
    kept = sorted(p.read_bytes() for p in tmp_path.glob(f"{PLACED_FILE}.damaged-*"))
    assert kept == sorted(damaged)
    assert json.loads(path.read_text()) == []


def test_a_placed_json_of_rows_of_the_wrong_types_is_ignored_and_kept_aside(tmp_path, caplog):
    path = tmp_path / PLACED_FILE
    rows = [{"path": "/a.wav", "split": "test", "x": "abc", "y": [1]}]  # plot failed on it
    path.write_text(json.dumps(rows))
    with caplog.at_level(logging.WARNING, logger="analysis.placements"):
        assert read_placed(tmp_path) == []
    assert "x must be a number, got 'abc'" in caplog.text
    write_placed(tmp_path, [])
    aside, = tmp_path.glob(f"{PLACED_FILE}.damaged-*")
    assert json.loads(aside.read_text()) == rows


def test_only_placed_sounds_of_a_finite_place_are_drawn(tmp_path, caplog):
    from analysis.placements import placed_on_maps
    rows = [{"path": "/a.wav", "split": "test", "x": 1.5, "y": -2.0},
            {"path": "/nan.wav", "split": "test", "x": float("nan"), "y": 1.0},
            {"path": "/inf.wav", "split": "test", "x": 0.0, "y": float("inf")},
            {"path": "/none.wav", "split": "test", "error": "cannot decode audio"}]
    (tmp_path / PLACED_FILE).write_text(json.dumps(rows))  # NaN, Infinity: as Python writes
    assert [p.path for p in read_placed(tmp_path)] == [row["path"] for row in rows]
    assert [p.path for p in placed_on_maps(tmp_path)] == ["/a.wav"]
    assert f"{tmp_path / PLACED_FILE}: 3 of the placed sounds have no finite place on a map " \
           f"(x, y), e.g. /nan.wav; left out" in caplog.text
    caplog.clear()
    (tmp_path / PLACED_FILE).write_text('[{"path": 5}]')
    assert read_placed(tmp_path) == []
    assert "not a list of placed sounds (an entry is not an object with a path and a split: " \
           "{'path': 5})" in caplog.text
    (tmp_path / PLACED_FILE).write_text('[{"path": ')
    assert read_placed(tmp_path) == []
    assert f"{tmp_path / PLACED_FILE}: not a list of placed sounds (not valid json" in caplog.text
