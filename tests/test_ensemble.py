"""The ensemble of perceptrons behind the highlight boost (hdrsyn.ensemble)."""

import torch

from hdrsyn.ensemble import Ensemble


def test_members_predict_one_number_or_several_and_the_ensemble_their_mean():
    torch.manual_seed(0)
    features = torch.randn(7, 4)
    one = Ensemble(3, 8, 4)
    assert one.members(features).shape == (3, 7)
    torch.testing.assert_close(one(features), one.members(features).mean(dim=0))
    several = Ensemble(3, 8, 4, outputs=5)
    assert several.members(features).shape == (3, 7, 5)
    own = torch.randn(3, 7, 4)  # each member its own features
    assert several.members(own).shape == (3, 7, 5)
    for member in range(3):  # a member's prediction does not depend on the others' inputs
        changed = own.clone()
        changed[(member + 1) % 3] += 1
        torch.testing.assert_close(several.members(changed)[member], several.members(own)[member])


def test_features_are_standardised_by_the_buffers():
    net = Ensemble(2, 8, 3).double()
    features = torch.randn(5, 3, dtype=torch.float64)
    before = net.members(features)
    net.mean.fill_(2.0)
    net.scale.fill_(4.0)
    torch.testing.assert_close(net.members(features * 4 + 2), before)
