public class Palindrome {
    public static boolean check(String s) {
        return new StringBuilder(s).reverse().toString().equals(s);
    }
}
