# starter: do not change
import sys

def read_values(stream):
    """Returns the integers of the input, in order."""
    data = stream.read().split()
    values = []
    for t in data:
        values.append(int(t))
    return values

values = read_values(sys.stdin)
# end of starter
