"""What the runners' outputs prove: accuracy, speed, parity with the seed, two runs compared."""
