"""The benchmarks' bandwidth yardstick: KerasoptTriad computes a = b + s c."""

from kerasopt.bench import bandwidth

from conftest import require_kernel_library


def test_triad_computes_a_equals_b_plus_s_c_and_times_it():
    require_kernel_library()
    triad = bandwidth.Triad(n=4099)  # Triad checks the values after its first run
    assert triad.call() > 0 and triad.gbps(1.0) == 12 * 4099 / 1e9
