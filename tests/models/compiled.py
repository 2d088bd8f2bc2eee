import torch
from torch import nn

input_shape = (1, 4)
model = torch.compile(nn.Linear(4, 2))
