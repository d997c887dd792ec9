"""The benchmark's own logic on small inputs: machine description, verdicts, FAISS agreement, the decode paths
(no timings)."""
import numpy as np

from bench.machine import this_machine
from bench.ranking_bench import queries_near, unit_vectors, versus_faiss
from bench.report import at_least, at_most, markdown
from config import DEFAULTS
from tests.conftest import ROOT


def test_machine_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.000\nflags\t\t: sse avx2 fma\n\n"
                       "processor\t: 1\nmodel name\t: Other\n")
    machine = this_machine(cpuinfo)
    assert (machine.cpu, machine.mhz) == ("Test CPU", 2000.0)
    assert machine.peak_flops == machine.cores * 2000e6 * 32
    assert "AVX2+FMA" in machine.describe()


def test_verdicts_say_by_how_much_a_goal_is_missed():
    assert at_least("f", "v", "b", 1.0, 0.9, "g").verdict == "met"
    assert at_least("f", "v", "b", 0.45, 0.9, "g").verdict == "NOT met: 50% short"
    assert at_most("f", "v", "b", 1.5, 1.25, "g").verdict == "NOT met: 20% over"
    assert "| f | v | b | 1.5× | g | NOT met: 20% over |" in markdown([at_most("f", "v", "b", 1.5, 1.25, "g")])


def test_ranking_finds_the_same_top_k_as_faiss():
    vectors = unit_vectors(5_000)
    versus = versus_faiss(vectors, queries_near(vectors, 5), k=30)
    assert versus.identical == versus.queries == 5


def test_both_upload_paths_give_the_network_the_same_picture():
    """The decode benchmark compares like with like: a 12 MP photo, decoded at reduced scale or whole."""
    from bench.decode_bench import full_decode, phone_photo
    from images.decoding import decode_image, to_array

    data = phone_photo(sorted((ROOT / "demo" / "catalogue" / "Watches").glob("*.jpg"))[0])
    decoded = decode_image(data, DEFAULTS.max_image_pixels, 224)
    assert (decoded.width, decoded.height) == (4000, 3000) and decoded.rgb.size[0] < 4000
    reduced, full = to_array(decoded.rgb, 224), full_decode(data, 224)
    assert reduced.shape == full.shape == (224, 224, 3)
    assert np.abs(reduced.astype(float) - full).mean() < 4  # grey levels of 255
