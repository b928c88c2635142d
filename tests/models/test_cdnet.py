import pytest
import torch

from bench.fcsiam import FCSiamDiff
from models.cdnet import ArchitectureSpec, SiteNet, SiteNetConfig, build_network, count_parameters


@pytest.mark.parametrize("bands", [1, 3, 6, 13])
def test_sitenet_returns_full_resolution_logit_for_any_band_count(bands):
    net = SiteNet(SiteNetConfig(bands)).eval()
    a, b = torch.randn(2, bands, 64, 48), torch.randn(2, bands, 64, 48)
    with torch.inference_mode():
        out = net(a, b)
    assert out.shape == (2, 1, 64, 48)
    assert torch.isfinite(out).all()


def test_default_sitenet_is_under_half_a_million_parameters():
    assert count_parameters(SiteNet(SiteNetConfig(6))) < 300_000
    assert count_parameters(FCSiamDiff(6)) > 1_000_000


def test_sitenet_is_symmetric_in_the_dates():
    torch.manual_seed(0)
    net = SiteNet(SiteNetConfig(4)).eval()
    a, b = torch.randn(1, 4, 32, 32), torch.randn(1, 4, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(net(a, b), net(b, a), atol=1e-5)


def test_identical_dates_give_the_same_logit_everywhere_on_flat_input():
    net = SiteNet(SiteNetConfig(3)).eval()
    x = torch.zeros(1, 3, 32, 32)
    with torch.inference_mode():
        out = net(x, x)
    assert float(out.std()) < 1e-4


def test_build_network_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network(ArchitectureSpec("resnet", {}))


def test_fcsiam_reference_output_shape():
    net = FCSiamDiff(3).eval()
    with torch.inference_mode():
        assert net(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_conv_bn_fusion_keeps_outputs():
    from models.cdnet import fuse_conv_bn

    torch.manual_seed(0)
    net = SiteNet(SiteNetConfig(3))
    net.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for _ in range(3):
            net(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    net.eval()
    a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        expected = net(a, b)
        fused = fuse_conv_bn(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        assert torch.allclose(fused(a, b), expected, atol=1e-4)
