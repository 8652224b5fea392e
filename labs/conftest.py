"""What the lab modules share: the 2048 game of Labs 2 and 3, built once per xdist group."""

from __future__ import annotations

import pytest

from fargatelab import Lab, SharedSetups
from labs._game import TAG, Game, Games, Variant, deploy


@pytest.fixture
def games(shared_setups: SharedSetups) -> Games:
    """``games(FARGATE_GAME, lab)``: the variant's deployment, built on first use; ``lab`` inherits its setup."""

    def game(variant: Variant, for_lab: Lab) -> Game:
        return shared_setups(f"2048 {variant.id}", lambda owner: deploy(owner, variant), for_lab, scope=TAG)

    return game
