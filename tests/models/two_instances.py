from torch import nn

encoder = nn.Linear(4, 4)
decoder = nn.Linear(4, 2)
