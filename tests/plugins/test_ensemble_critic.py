import pytest
import torch

from robotune.plugins.ensemble_critic import EnsembleCritic, EnsembleCriticConfig


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_batched_ensemble_equals_its_members_run_one_by_one(layer_norm, activation):
    torch.manual_seed(0)
    critic = EnsembleCritic(EnsembleCriticConfig(num_members=3, hidden_dims=(16, 8), layer_norm=layer_norm, activation=activation), 5, 2)
    with torch.no_grad():  # make the LayerNorm affines non-trivial, so the test sees them
        for parameter in critic.norms:
            parameter.add_(torch.randn_like(parameter) * 0.3)
    obs, action = torch.randn(7, 5), torch.randn(7, 2)
    batched = critic.q_value(obs, action)
    assert batched.shape == (3, 7)
    for member in range(3):
        one = critic.member(member)(torch.cat([obs, action], dim=-1)).squeeze(-1)
        torch.testing.assert_close(batched[member], one, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(critic.first_q_value(obs, action), batched[0], rtol=0, atol=1e-6)  # member 0 run alone


def test_members_start_different_and_value_critics_take_observations_only():
    torch.manual_seed(0)
    critic = EnsembleCritic(EnsembleCriticConfig(num_members=2, orthogonal_init=True), 4, 0)
    values = critic.value(torch.randn(6, 4))
    assert values.shape == (2, 6) and not torch.allclose(values[0], values[1])
    with pytest.raises(ValueError, match="critic expects actions of dim 0"):
        critic.q_value(torch.randn(6, 4), torch.randn(6, 1))


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="critic.activation"):
        EnsembleCriticConfig(activation="sigmoid")
    with pytest.raises(ValueError, match="critic.num_members"):
        EnsembleCriticConfig(num_members=0)
