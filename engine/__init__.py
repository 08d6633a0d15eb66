"""The engine behind train.py and test.py: config choices and command line, runtime (device,
torchrun, AMP), data loaders, optimiser and schedule, checkpoints, metrics and evaluation,
the training loop and the tester."""
