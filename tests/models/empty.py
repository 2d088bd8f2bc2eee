import math

VALUE = math.pi
