"""The paper's baselines on the suite's shared core: one file per method, each with get_config().

Every module implements the agent interface of expo/agents/expo.py (create / update / pretrain_update
/ sample_actions, optional eval_actions) and is registered by name in expo/config.py METHODS, so
`method=<name>` runs it through the same training loop, evaluation, logging and launcher.
"""
