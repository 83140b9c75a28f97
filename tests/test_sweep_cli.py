"""`byoldyn sweep` / `byoldyn plot` on bad input: one line on stderr and exit 2, or a recomputation
that says so; the work bound; negative and duplicate values; damaged resume files; unwritable outputs."""

import json
import time

import numpy as np
import pytest
import xarray as xr

from byoldyn.cli import main
from byoldyn.io import save_netcdf
from byoldyn.sweeps import parts_dir

TINY = ["--n1", "2", "--t1", "1", "--dt", "0.5", "--x64", "--no-progress"]


def _run(argv, capsys):
    """`byoldyn ARGV` in-process: (exit status, stdout, stderr lines)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _one_error(argv, capsys, exit_code=2):
    code, out, err = _run(argv, capsys)
    assert code == exit_code and len(err) == 1 and out == "", (code, out, err)
    return err[0]


@pytest.mark.parametrize("argv, value", [
    (["--eta", "-1:0:2"], "-1.0"), (["--eta=-1:0:2"], "-1.0"), (["--eta", "-1,0"], "-1.0"),
    (["--eta", "-0.5"], "-0.5"), (["--sigma2", "-1e-3"], "-0.001"), (["--eta", "-1:-0.5:2"], "-1.0"),
])
def test_negative_values_parse_as_values_then_are_validated(argv, value, capsys, tmp_path):
    """argparse took `-1:0:2` for an option ("expected one argument"); now it is a value, refused by the check."""
    flag = argv[0].split("=")[0]
    line = _one_error(["sweep", *argv, *TINY, "--out", tmp_path / "n.nc"], capsys)
    assert line == f"byoldyn: error: {flag} must be >= 0, got {value}"
    assert not (tmp_path / "n.nc").exists() and not parts_dir(tmp_path / "n.nc").exists()


@pytest.mark.parametrize("argv, text", [
    (["--n1", "8,8"], "'8,8'"), (["--n1", "1:2:4"], "'1:2:4' (after rounding to integers)"),
    (["--eta", "0.1,0.1"], "'0.1,0.1'"), (["--eta", "0:0:3"], "'0:0:3'"), (["--seeds", "3,3"], "'3,3'"),
])
def test_duplicate_values_are_refused_not_collapsed(argv, text, capsys, tmp_path):
    line = _one_error(["sweep", *argv, *TINY, "--out", tmp_path / "d.nc"], capsys)
    assert line.startswith(f"byoldyn sweep: error: argument {argv[0]}: duplicate values in {text}"), line


@pytest.mark.parametrize("argv, expect", [
    (["--seeds", "0,4294967296"], "argument --seeds: must be integer seeds in [0, 2**32), got '0,4294967296'"),
    (["--seeds", "-1,2"], "argument --seeds: must be integer seeds in [0, 2**32), got '-1,2'"),
    (["--seeds", "4294967297"], "--seeds must be a positive count (at most 2**32)"),
])
def test_seeds_outside_32_bits_are_refused(argv, expect, capsys, tmp_path):
    line = _one_error(["sweep", *argv, *TINY, "--out", tmp_path / "s.nc"], capsys)
    assert expect in line, line


def test_a_billion_values_fail_within_a_second(capsys, tmp_path):
    """`--alpha-p log:1:2:1000000000` was OOM-killed; the count is refused before any array."""
    t = time.perf_counter()
    line = _one_error(["sweep", "--alpha-p", "log:1:2:1000000000", *TINY, "--out", tmp_path / "b.nc"], capsys)
    assert time.perf_counter() - t < 1.0
    assert line == ("byoldyn sweep: error: argument --alpha-p: the count in 'log:1:2:1000000000' is above 1000000, "
                    "the most values one flag may sweep")


def test_widths_that_cannot_fit_are_refused_before_xla(capsys, tmp_path, monkeypatch):
    """`--level matrix --n1 100000` aborted inside XLA: one member is (2 n1 n2 + n2^2) floats, refused from the sizes."""
    monkeypatch.setenv("BYOLDYN_MEMORY_LIMIT", "64e9")
    t = time.perf_counter()
    line = _one_error(["sweep", "--level", "matrix", "--n1", "100000", "--x64", "--no-progress", "--out",
                       tmp_path / "m.nc"], capsys)
    assert time.perf_counter() - t < 1.0
    # float64: 3e10 state entries x (8 RK4 stages + 3 copies) + 4e10 eigendecomposition work, 8 bytes each
    assert line.startswith("byoldyn: error: --n1 = 100000, --n2 = 100000 too large at the matrix level: one member "
                           "needs about 2.96 TB, above the memory limit 64 GB (BYOLDYN_MEMORY_LIMIT)"), line


@pytest.mark.slow
def test_the_grid_and_the_chunk_are_bounded(capsys, tmp_path, monkeypatch):
    """The whole grid's results and one chunk's states are estimated against the limit, naming the flags."""
    monkeypatch.setenv("BYOLDYN_MEMORY_LIMIT", "1e8")
    line = _one_error(["sweep", "--alpha-p", "log:1:2:1000000", "--eta", "0:1:100", *TINY, "--out", tmp_path / "g.nc"],
                      capsys)
    # per member: 8 observables (4 + 2 x n2 = 2 modes) of 8 bytes + 1 status byte, kept twice (130 bytes), plus the
    # member table (8 parameters + seed, n1/n2 groups, 2 grid indices: 13 x 8 bytes): 234 bytes x 1e8 members
    assert line == ("byoldyn: error: sweep too large: 100000000 members (--alpha-p 1000000 x --eta 100 x --seeds 1) "
                    "need about 23.4 GB of memory, above the memory limit 100 MB (BYOLDYN_MEMORY_LIMIT); sweep fewer values")
    monkeypatch.setenv("BYOLDYN_MEMORY_LIMIT", "6000")
    seeds = ["sweep", "--seeds", "16", *TINY]
    line = _one_error([*seeds, "--chunk", "16", "--out", tmp_path / "c.nc"], capsys)
    # one member: 6 state entries x (8 RK4 stages + 3 copies) + 8 observables, 8 bytes = 592 B (the start, 256 B,
    # is smaller); the results of the 16 members take 16 x (2 x 65 + 88) = 3488 B: (6000 - 3488) // 592 = 4
    assert line == ("byoldyn: error: --chunk = 16: a chunk of 16 members (--n1 = 2, --n2 = 2) needs about 9.47 kB, "
                    "above the memory limit 6 kB (BYOLDYN_MEMORY_LIMIT); use a chunk of at most 4 members"), line
    code, text, err = _run([*seeds, "--chunk", "2", "--out", tmp_path / "c.nc"], capsys)
    assert code == 0 and "16 members (seed 16), 0 failed; 8 chunk(s) computed" in text, err
    monkeypatch.setenv("BYOLDYN_MEMORY_LIMIT", "lots")
    assert _one_error(["sweep", *TINY, "--out", tmp_path / "e.nc"], capsys) == (
        "byoldyn: error: BYOLDYN_MEMORY_LIMIT must be a number of bytes > 0, got 'lots'")


@pytest.fixture
def finished(tmp_path, capsys):
    """A finished 2 x 2 sweep with its chunk files kept, and the clean result to compare with."""
    out = tmp_path / "r.nc"
    argv = ["sweep", "--alpha-p", "1,2", "--eta", "0,0.5", *TINY, "--chunk", "2", "--keep-parts", "--resume",
            "--out", out]
    code, text, err = _run(argv, capsys)
    assert code == 0, err
    return argv, out, _load(out)


def _load(path):
    with xr.open_dataset(path, engine="h5netcdf") as ds:  # closed: xarray caches open files otherwise
        return ds.load()


def _same(a, b):
    for k in b.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


def _resign(f):
    """Record the sha256 of the edited chunk `f` in the manifest (as if it had been written so): the schema checks
    below the checksum are what is tested."""
    import hashlib

    manifest = f.parent / "manifest.json"
    m = json.loads(manifest.read_text())
    m["sha256"][f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(m))


def test_chunk_missing_a_variable_is_recomputed(finished, capsys):
    """A valid chunk with the right hash but `norm_W` dropped was reused (NaNs, exit 0)."""
    argv, out, clean = finished
    out.unlink()
    f = parts_dir(out) / "chunk-00001.nc"
    with xr.open_dataset(f, engine="h5netcdf") as c:
        bad = c.load().drop_vars("norm_W")
    save_netcdf(bad, f)
    _resign(f)
    argv = [a if a != "--no-progress" else "--progress" for a in argv]
    code, text, err = _run(argv, capsys)
    assert code == 0
    assert f"sweep: {f} missing variable 'norm_W'; recomputing it" in err
    assert "1 chunk(s) computed, 1 reused, 1 damaged file(s) recomputed (chunk-00001.nc)" in text
    ds = _load(out)
    assert np.isfinite(ds.norm_W.values).all()
    _same(ds, clean)


@pytest.mark.parametrize("damage, why", [
    (lambda c: c.assign(n_modes=c.n_modes.astype("float32")), "variable 'n_modes' has dtype float32, expected float64"),
    (lambda c: c.isel(mode=slice(0, 1)), "variable 's' has dims {'member': 2, 'mode': 1}, expected {'member': 2, 'mode': 2}"),
    (lambda c: c.assign(extra=c.norm_W), "unexpected variable 'extra'"),
    (lambda c: c.assign(status=c.status * 0 + 7), "has an invalid status value"),
], ids=["dtype", "size", "extra", "status"])
def test_chunk_with_a_wrong_schema_is_recomputed(finished, damage, why, capsys):
    argv, out, clean = finished
    out.unlink()
    f = parts_dir(out) / "chunk-00000.nc"
    with xr.open_dataset(f, engine="h5netcdf") as c:
        bad = damage(c.load())
    save_netcdf(bad, f)
    _resign(f)
    code, text, err = _run([a if a != "--no-progress" else "--progress" for a in argv], capsys)
    assert code == 0 and f"sweep: {f} {why}; recomputing it" in err, err
    _same(_load(out), clean)


def test_corrupt_out_with_resume_is_recomputed_from_the_parts(finished, capsys):
    """A damaged final OUT under --resume (truncated: unreadable) is rebuilt from OUT.parts/, with a message."""
    argv, out, clean = finished
    out.write_bytes(out.read_bytes()[:300])
    code, text, err = _run([a if a != "--no-progress" else "--progress" for a in argv], capsys)
    assert code == 0
    assert any(e.startswith(f"sweep: {out} is damaged (unreadable") and e.endswith(f"recomputing it from {parts_dir(out)}")
               for e in err), err
    assert "0 chunk(s) computed, 2 reused, 1 damaged file(s) recomputed (r.nc)" in text
    _same(_load(out), clean)


def test_out_missing_a_variable_with_resume_is_recomputed(finished, capsys):
    argv, out, clean = finished
    save_netcdf(clean.drop_vars("tau_hat"), out)
    code, text, err = _run(argv, capsys)
    assert code == 0 and "1 damaged file(s) recomputed (r.nc)" in text
    _same(_load(out), clean)


def test_corrupt_manifest_is_rebuilt_and_named(finished, capsys):
    """A corrupt manifest gave a JSON error without the file; it is now rebuilt. Its chunks' sha256
    are lost with it, so the chunks are recomputed, never trusted unchecked."""
    argv, out, clean = finished
    out.unlink()
    manifest = parts_dir(out) / "manifest.json"
    manifest.write_text('{"config_hash": "abc", ')
    code, text, err = _run([a if a != "--no-progress" else "--progress" for a in argv], capsys)
    assert code == 0
    assert any(e.startswith(f"sweep: cannot read sweep manifest {str(manifest)!r}: ") and e.endswith("; rebuilding it")
               for e in err), err
    assert "2 chunk(s) computed, 0 reused" in text and f"sweep: {parts_dir(out) / 'chunk-00000.nc'} has no sha256 " \
        "in the manifest; recomputing it" in err
    m = json.loads(manifest.read_text())
    assert m["chunks"] == 2 and sorted(m["sha256"]) == ["chunk-00000.nc", "chunk-00001.nc"]
    manifest.write_text("[1, 2]")
    out.unlink()
    code, text, err = _run([a if a != "--no-progress" else "--progress" for a in argv], capsys)
    assert code == 0 and f"sweep: sweep manifest {str(manifest)!r} is not a JSON object with a config; rebuilding it" in err


def test_resume_hint_names_the_flag(finished, capsys):
    """The CLI said `resume=False`, a Python argument; it names --resume / --out."""
    argv, out, clean = finished
    other = [a if a != "1,2" else "1,3" for a in argv]
    line = _one_error(other, capsys)
    assert line.startswith(f"byoldyn: error: resume: {out} holds a sweep with a different configuration"), line
    assert line.endswith("; use another --out, or drop --resume to overwrite it") and "resume=" not in line
    out.unlink()
    line = _one_error(other, capsys)
    assert line == (f"byoldyn: error: resume: {parts_dir(out)} holds chunks of a different sweep configuration "
                    "(differs in grid); use the same arguments, another --out, or drop --resume to start afresh")


def test_resume_never_overwrites_a_readable_file_that_is_not_a_sweep(tmp_path, capsys):
    out = tmp_path / "other.nc"
    save_netcdf(xr.Dataset({"x": ("i", np.arange(3.0))}), out)
    line = _one_error(["sweep", *TINY, "--resume", "--out", out], capsys)
    assert line == f"byoldyn: error: resume: {out} holds no byoldyn sweep; use another --out, or drop --resume to overwrite it"
    assert _load(out).x.values.tolist() == [0.0, 1.0, 2.0]


def test_unwritable_outputs_are_refused_before_computing(tmp_path, capsys):
    """OUT under a regular file, OUT a directory, OUT.parts a file, and /proc (where even root cannot create a file:
    a genuinely unwritable place, unlike a chmod 0o555 directory for root): one line, exit 2, nothing computed."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.nc").mkdir()
    (tmp_path / "p.parts").write_text("x")
    cases = [(tmp_path / "file" / "x.nc", f"--out: {str(tmp_path / 'file')!r} is not a directory"),
             (tmp_path / "dir.nc", f"--out {str(tmp_path / 'dir.nc')!r} is a directory, not a file"),
             (tmp_path / "p.nc", f"--out: the chunk directory {str(tmp_path / 'p.parts')!r} is a file, not a directory"),
             ("/proc/byoldyn-sweep/x.nc", "--out: cannot write in '/proc' (files cannot be created there)")]
    for out, expect in cases:
        t = time.perf_counter()
        assert _one_error(["sweep", "--n1", "2", "--alpha-p", "1,2", *TINY, "--out", out], capsys) == \
            "byoldyn: error: " + expect
        assert time.perf_counter() - t < 2.0
    assert not (tmp_path / "p.nc").exists()


def test_plot_unwritable_output_and_corrupt_inputs(finished, tmp_path, capsys):
    argv, out, clean = finished
    (tmp_path / "file").write_text("x")
    assert _one_error(["plot", out, "--out", tmp_path / "file" / "x.png"], capsys) == \
        f"byoldyn: error: --out: {str(tmp_path / 'file')!r} is not a directory"
    assert _one_error(["plot", out, "--out", "/proc/x.png"], capsys) == \
        "byoldyn: error: --out: cannot write in '/proc' (files cannot be created there)"
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    line = _one_error(["plot", garbage], capsys)
    assert line.startswith(f"byoldyn: error: cannot read {str(garbage)!r} as netCDF: "), line
    nosweep = tmp_path / "nosweep.nc"
    save_netcdf(clean.drop_vars("status"), nosweep)
    assert _one_error(["plot", nosweep], capsys) == f"byoldyn: error: {str(nosweep)!r} is not a byoldyn sweep file"
    assert _one_error(["plot", tmp_path], capsys) == f"byoldyn: error: {str(tmp_path)!r} is a directory, not a sweep file"
