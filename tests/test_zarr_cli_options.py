"""`vre export ... store_options.K=V`: the store's options from the command line, without Hydra's ``+``, to the
store of the run and of its worker processes; a typo is one line naming the valid options; credentials given in
``store_options.storage_options`` are never printed nor written anywhere (issue 23 follow-up)."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from vrecore.cli.app import main

# zarr found, not imported: collecting the tests stays light
pytestmark = pytest.mark.skipif(importlib.util.find_spec("zarr") is None, reason="needs zarr")

SIZE = "[24,32]"
SECRET = "sEcReT-4f1c9e7a-not-a-real-key"


def export_args(video: Path, out: str | Path, *extra: str) -> list[str]:
    return ["export", f"video={video}", f"output_dir={out}", "frames=0..4", "pipeline=rgb_hsv",
            f"representations.rgb.output_size={SIZE}", f"representations.hsv.output_size={SIZE}", *extra]


def inner_codecs(out: Path, name: str) -> tuple[list[str], int]:
    meta = json.loads((out / name / "zarr.json").read_text())
    return ([c["name"] for c in meta["codecs"][0]["configuration"]["codecs"]],
            meta["chunk_grid"]["configuration"]["chunk_shape"][0])


@pytest.mark.parametrize("workers", [1, 2])
def test_store_options_on_the_command_line_reach_the_store(registry, sample_video, tmp_path, capsys, workers):
    out = tmp_path / "clip.zarr"
    code = main(export_args(sample_video, out, "store_options.codec=none", "store_options.frames_per_shard=2",
                            f"workers={workers}"))
    assert code == 0, capsys.readouterr().err
    for name in ("rgb", "hsv"):
        assert inner_codecs(out, name) == (["bytes"], 2), name
    shard = out / "rgb" / "c" / "1" / "0" / "0" / "0"
    assert shard.stat().st_size == 2 * 24 * 32 * 3 + 2 * 16, "two raw chunks and the shard index"
    assert main(["verify", str(out), "--deep"]) == 0


def test_a_mistyped_store_option_is_one_line_naming_the_valid_ones(registry, sample_video, tmp_path, capsys):
    out = tmp_path / "clip.zarr"
    assert main(export_args(sample_video, out, "store_options.codc=none")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vre export: error: store 'zarr' has no option 'codc'"), lines[0]
    assert "codec" in lines[0] and "frames_per_shard" in lines[0] and "storage_options" in lines[0], lines[0]
    assert not out.exists(), "refused before anything was made"


def test_the_directory_store_takes_no_options(registry, sample_video, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(export_args(sample_video, out, "store_options.codec=none")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "store 'directory' has no option 'codec'" in lines[0], lines
    assert not out.exists()


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def test_credentials_in_storage_options_are_never_printed_nor_stored(registry, sample_video, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "clip.zarr"
    option = f"store_options.storage_options.secret={SECRET}"
    code = main(export_args(sample_video, out, option, "store_options.frames_per_shard=2"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert main(export_args(sample_video, out, option, "frames=0..6", "store_options.codc=x")) == 2, "a refusal"
    assert main(["verify", str(out)]) == 0 and main(["report", str(out)]) == 0
    printed = captured.out + captured.err + "".join(capsys.readouterr())
    assert SECRET not in printed
    cache = Path(os.environ["VRE_CACHE"])
    for root in (tmp_path, cache):
        leaked = [path for path, data in all_bytes(root).items() if SECRET.encode() in data]
        assert leaked == [], f"the secret was written into {leaked}"
    run = json.loads(next((out / ".logs").glob("run_metadata_*.json")).read_text())
    assert run["config"]["store_options"]["frames_per_shard"] == 2, "the other options are recorded"


def test_s3_credentials_given_as_store_options_are_used_and_never_stored(registry, sample_video, bucket, tmp_path,
                                                                         capsys, monkeypatch):
    from tests.s3_server import s3

    monkeypatch.chdir(tmp_path)
    url = f"{bucket}/clip"
    key_id, secret = os.environ["AWS_ACCESS_KEY_ID"], f"{SECRET}-s3"
    with monkeypatch.context() as env:  # no credentials but the ones on the command line
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            env.delenv(name, raising=False)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        env.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        code = main(export_args(sample_video, url, f"store_options.storage_options.key={key_id}",
                                f"store_options.storage_options.secret={secret}", "workers=2"))
    printed = "".join(capsys.readouterr())
    assert code == 0, printed
    assert secret not in printed
    fs = s3()
    keys = fs.find(url)
    assert f"{url.removeprefix('s3://')}/rgb/zarr.json" in keys
    leaked = [k for k in keys if secret.encode() in fs.cat_file(k)]
    assert leaked == [], f"the secret was written into {leaked}"
    for root in (tmp_path, Path(os.environ["VRE_CACHE"])):
        leaked = [path for path, data in all_bytes(root).items() if secret.encode() in data]
        assert leaked == [], f"the secret was written into {leaked}"


def test_a_multirun_records_no_credential_either(registry, sample_video, tmp_path, capsys, monkeypatch):
    """Hydra saves a multirun's whole config (``multirun.yaml``, in ``<output_root>/.multirun``): with credentials
    on the command line it goes to a private temporary folder, removed at the end."""
    import tempfile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    code = main(["export", "-m", f"video={sample_video}", f"output_root={tmp_path}/root", "store=zarr",
                 "frames=0..2", f"store_options.storage_options.secret={SECRET}", "store_options.frames_per_shard=2"])
    printed = "".join(capsys.readouterr())
    assert code == 0, printed
    assert SECRET not in printed
    assert (tmp_path / "root" / "sample" / "rgb" / "zarr.json").is_file()
    for root in (tmp_path, Path(os.environ["VRE_CACHE"])):
        leaked = [path for path, data in all_bytes(root).items() if SECRET.encode() in data]
        assert leaked == [], f"the secret was written into {leaked}"
    assert os.listdir(tmp_path / "tmp") == [], "the temporary sweep folder is removed"


def test_an_error_that_would_show_a_credential_shows_it_hidden(registry, sample_video, tmp_path, capsys, monkeypatch):
    """Whatever a library puts in its message (an endpoint URL with a token in it...), the line printed hides the
    values given in store_options.storage_options."""
    from vrecore.errors import StorageError
    from vrecore.store import ZarrStore

    def refuse(store: ZarrStore) -> None:
        raise StorageError(f"cannot reach http://user:{store.files.storage_options['secret']}@example.invalid")

    monkeypatch.setattr(ZarrStore, "check_writable", refuse)
    code = main(export_args(sample_video, tmp_path / "clip.zarr", f"store_options.storage_options.secret={SECRET}"))
    err = capsys.readouterr().err
    assert code == 1 and SECRET not in err, err
    assert "cannot reach http://user:<hidden>@example.invalid" in err, err
