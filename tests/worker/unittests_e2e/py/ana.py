def is_palindrome(s):
    letters = [c.lower() for c in s if c.isalpha()]
    return letters == letters[::-1]


def mean(xs):
    if not xs:
        raise ValueError("the mean of no numbers")
    return sum(xs) / len(xs)
