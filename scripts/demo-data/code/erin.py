import sys

total = 0
for line in sys.stdin:
    if line.strip():
        total += int(line)
print(total)
