"""The engine behind train.py and test.py: runtime setup, data, evaluation, training."""
