"""`router-ml route --input`: every row routed at its own target, bad rows refused by line or row
before anything is routed, and each decision matched back to its input row
(router_ml.core.prompt_file, router_ml.core.cli)."""

import json

import pandas as pd
import pytest

from router_ml.cli import main
from router_ml.core.prompt_file import read_prompt_file, route_prompt_file
from router_ml.core.router import load_router
from router_ml.errors import ConfigError, PromptError, PromptTooLongError


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def route_file(capsys, router_dir, path, *extra):
    code, out, err = run(capsys, "route", "--router", str(router_dir), "--input", str(path), *extra)
    return code, [json.loads(line) for line in out.splitlines()] if code == 0 else [], err


def write_jsonl(path, rows, tail="\n"):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + tail)
    return path


PROMPTS = ["What is 2 + 2?", "Prove that there are infinitely many primes, in full detail.",
           "Translate into Basque: good morning", "Write a haiku about autumn."]


def test_a_rows_quality_target_is_its_target(capsys, trained_router_dir, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"prompt": PROMPTS[0], "quality_target": 0.0},
        {"prompt": PROMPTS[1], "quality_target": 1.0},
        {"prompt": PROMPTS[2]},  # no target: --quality-target
        {"prompt": PROMPTS[3], "quality_target": None},  # empty: --quality-target
    ])
    code, rows, err = route_file(capsys, trained_router_dir, src, "--quality-target", "0.3")
    assert code == 0, err
    assert [r["quality_target"] for r in rows] == [0.0, 1.0, 0.3, 0.3]
    router = load_router(trained_router_dir)
    for row, prompt in zip(rows, PROMPTS):
        expected = router.route_batch([prompt], row["quality_target"])[0]
        assert row["model"] == expected.model and row["confidence"] == pytest.approx(expected.confidence)
    # without --quality-target, rows without their own take the router's default
    code, rows, err = route_file(capsys, trained_router_dir, src)
    assert [r["quality_target"] for r in rows] == [0.0, 1.0, router.default_quality_target,
                                                   router.default_quality_target]


def test_csv_targets_are_read_as_numbers(capsys, trained_router_dir, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(f"prompt,quality_target\n{PROMPTS[0]},0.25\n{PROMPTS[2]},\n")
    code, rows, err = route_file(capsys, trained_router_dir, src, "--quality-target", "0.75")
    assert code == 0, err
    assert [r["quality_target"] for r in rows] == [0.25, 0.75]


@pytest.mark.parametrize("name, content, where, shown", [
    ("in.jsonl", '{"prompt": "a"}\n{"prompt": "b", "quality_target": 1.5}\n', "line 2", "1.5"),
    ("in.jsonl", '{"prompt": "a", "quality_target": "high"}\n', "line 1", "'high'"),
    ("in.jsonl", '{"prompt": "a", "quality_target": true}\n', "line 1", "True"),
    ("in.csv", "prompt,quality_target\na,0.5\nb,-0.1\n", "row 2", "-0.1"),
    ("in.csv", "prompt,quality_target\na,high\n", "row 1", "'high'"),
])
def test_a_bad_quality_target_is_refused_naming_file_row_and_value(capsys, trained_router_dir, tmp_path, name,
                                                                    content, where, shown):
    src, dst = tmp_path / name, tmp_path / "out.jsonl"
    src.write_text(content)
    code, _, err = run(capsys, "route", "--router", str(trained_router_dir), "--input", str(src), "--output", str(dst))
    assert code == 2
    assert f"{src}: field 'quality_target'" in err and f"{where} ({shown})" in err, err
    assert not dst.exists()  # refused before anything was routed or written
    with pytest.raises(ConfigError):
        read_prompt_file(src)


@pytest.mark.parametrize("name, content, found", [
    ("in.jsonl", '{"prompt": "a"}\n\n{"prompt": "b"}\n', "line 2 (blank line)"),
    ("in.jsonl", '{"prompt": "a"}\n  \n\n{"prompt": "b"}\n', "line 2 (blank line), line 3 (blank line)"),
    ("in.jsonl", '{"prompt": "a"}\n{"prompt": " \\u200b "}\n', "line 2 (' \\u200b ')"),
    ("in.jsonl", '{"prompt": "a"}\n{"prompt_id": "x"}\n', "line 2 (no prompt)"),
    ("in.jsonl", '{"prompt": "a"}\n{"prompt": 5}\n', "line 2 (5)"),
    ("in.csv", "prompt_id,prompt\n1,a\n\n3,b\n", "row 2 (empty row)"),
    ("in.csv", "prompt_id,prompt\n1,a\n2,   \n", "row 2 ('   ')"),
])
def test_blank_and_contentless_rows_are_refused_with_their_line(capsys, trained_router_dir, tmp_path, name, content,
                                                                  found):
    src, dst = tmp_path / name, tmp_path / "out.jsonl"
    src.write_text(content)
    code, _, err = run(capsys, "route", "--router", str(trained_router_dir), "--input", str(src), "--output", str(dst))
    assert code == 2
    assert f"{src}: field 'prompt'" in err and " ".join(found.split()) in err, err  # one line: spaces collapsed
    assert not dst.exists()
    with pytest.raises(PromptError) as refused:
        read_prompt_file(src)
    assert found in str(refused.value)


def test_blank_lines_at_the_end_are_only_the_files_end(capsys, trained_router_dir, tmp_path):
    jsonl = write_jsonl(tmp_path / "in.jsonl", [{"prompt": PROMPTS[0]}, {"prompt": PROMPTS[1]}], tail="\n\n \n")
    csv = tmp_path / "in.csv"
    csv.write_text(pd.DataFrame({"prompt": PROMPTS[:2]}).to_csv(index=False) + "\n\n")
    for src, place in ((jsonl, "line"), (csv, "row")):
        code, rows, err = route_file(capsys, trained_router_dir, src)
        assert code == 0, err
        assert [r[place] for r in rows] == [1, 2]


def test_each_decision_names_its_line_and_prompt_id(capsys, trained_router_dir, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"prompt_id": "q-1", "prompt": PROMPTS[0]},
        {"prompt_id": 17, "prompt": PROMPTS[1]},
        {"prompt": PROMPTS[2]},  # no id on this line
    ])
    code, rows, err = route_file(capsys, trained_router_dir, src)
    assert code == 0, err
    assert [(r["line"], r["prompt_id"]) for r in rows] == [(1, "q-1"), (2, 17), (3, None)]
    assert all("prompt" not in r for r in rows)  # the text only on request
    code, rows, err = route_file(capsys, trained_router_dir, src, "--with-prompt")
    assert [r["prompt"] for r in rows] == PROMPTS[:3]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_tables_are_matched_by_row(capsys, trained_router_dir, tmp_path, suffix):
    frame = pd.DataFrame({"prompt_id": ["a", "b", "c"], "prompt": PROMPTS[:3]})
    src = tmp_path / f"in.{suffix}"
    frame.to_csv(src, index=False) if suffix == "csv" else frame.to_parquet(src)
    code, rows, err = route_file(capsys, trained_router_dir, src)
    assert code == 0, err
    assert [(r["row"], r["prompt_id"]) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
    assert all("line" not in r for r in rows)


def test_without_a_prompt_id_column_there_is_no_prompt_id(capsys, trained_router_dir, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": PROMPTS[0]}, {"prompt": PROMPTS[1]}])
    code, rows, err = route_file(capsys, trained_router_dir, src)
    assert code == 0, err
    assert [r["line"] for r in rows] == [1, 2] and all("prompt_id" not in r for r in rows)


def test_the_table_names_each_row_and_its_target(capsys, trained_router_dir, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"prompt_id": "q-1", "prompt": PROMPTS[0], "quality_target": 0.0},
        {"prompt_id": "q-22", "prompt": PROMPTS[1]},
    ])
    code, out, err = run(capsys, "route", "--router", str(trained_router_dir), "--input", str(src),
                         "--format", "table", "--quality-target", "0.9")
    assert code == 0, err
    header, *lines = out.splitlines()
    assert "quality_target per row" in header
    assert lines[0].startswith("line 1  q-1 ") and lines[1].startswith("line 2  q-22 ")
    assert "target=0 " in lines[0] and "target=0.9 " in lines[1]
    assert lines[0].index(" p=") == lines[1].index(" p=")


def test_the_file_is_embedded_once_and_decided_per_target(trained_router_dir, tmp_path):
    router = load_router(trained_router_dir, decision_cache_size=0, embedding_cache_size=0)
    calls = []
    encode = router.embedder.encode
    router.embedder.encode = lambda texts: calls.append(list(texts)) or encode(texts)
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": p, "quality_target": t}
                                              for p, t in zip(PROMPTS, [0.2, None, 0.2, 0.9])])
    decisions = route_prompt_file(router, read_prompt_file(src), quality_target=0.5)
    assert len(calls) == 1 and calls[0] == PROMPTS
    expected = {t: router.route_batch([p for p, tt in zip(PROMPTS, [0.2, 0.5, 0.2, 0.9]) if tt == t], t)
                for t in (0.2, 0.5, 0.9)}
    one_by_one = [expected[0.2][0], expected[0.5][0], expected[0.2][1], expected[0.9][0]]
    assert [(d.model, d.quality_target) for d in decisions] == [(d.model, d.quality_target) for d in one_by_one]
    assert [d.confidence for d in decisions] == pytest.approx([d.confidence for d in one_by_one])


def test_a_prompt_over_the_routers_limit_is_named_by_its_line(trained_router_dir, tmp_path):
    router = load_router(trained_router_dir, max_prompt_chars=50)
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": PROMPTS[0]}, {"prompt": "x" * 51}])
    with pytest.raises(PromptTooLongError, match=r"in\.jsonl: line 2: 51 characters"):
        route_prompt_file(router, read_prompt_file(src))
