def is_palindrome(s):
    return s == s[::-1]


def mean(xs):
    return sum(xs) / len(xs)
