"""Training: data, the rate-distortion loop, export to weights/."""
