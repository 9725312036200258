"""Fig. 8: no offline dataset kept, on Lift and Can, EXPO vs Cal-QL pretraining + SAC fine-tuning,
3 seeds (2 x 2 x 3 = 12 runs).

Both methods pretrain on the dataset (EXPO: its base policy by imitation, 200k steps; Cal-QL: policy
and critic, 200k steps), then drop the offline data (keep_offline_data=false): the online buffer is
warm-started with as many rollouts of the pretrained policy as the dataset had demos (Lift 10,
Can 300: warm_start_episodes unset means the run's number of demos), and every minibatch comes from
that buffer. Offline-to-online by construction. Lift uses the paper's robomimic Lift PH file
(see _paper.py).
"""
from experiments.grids._paper import SEEDS, TASK_OVERRIDES

NO_OFFLINE_DATA = {"keep_offline_data": False}

GRID = {
    "description": "no offline data kept, buffer warm-started by the pretrained policy: EXPO vs Cal-QL + SAC",
    "tasks": ["lift", "can"],
    "arms": [{"method": "expo", "overrides": NO_OFFLINE_DATA},
             {"method": "calql_sac", "overrides": NO_OFFLINE_DATA}],
    "seeds": SEEDS,
    "setting": "offline_to_online",
    "scale": "paper",
    "overrides": {},
    "task_overrides": TASK_OVERRIDES,
}
