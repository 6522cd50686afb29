import sys

numbers = [int(x) for x in sys.stdin.read().split()]
print(numbers[0] + numbers[-1])
