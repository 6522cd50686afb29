// StepmarkJUnit: the harness of Java unit tests (kind "junit"), run by the worker inside the
// sandbox (embedded at build time, see cmake/embed_runners.cmake). It reads a nonce on stdin,
// runs the JUnit 5 test class named by its argument through the JUnit Platform launcher (the
// Debian junit5 package's console-standalone jar) and prints one line
// "@@SM-RESULT <nonce> <json>" with each test method's outcome.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

public final class StepmarkJUnit {
    static final int MAX_TEXT = 1500;

    static String esc(String s) {
        if (s == null)
            return "null";
        if (s.length() > MAX_TEXT)
            s = s.substring(0, MAX_TEXT) + " [...]";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\')
                b.append('\\').append(c);
            else if (c < 0x20)
                b.append(String.format("\\u%04x", (int) c));
            else
                b.append(c);
        }
        return b.append('"').toString();
    }

    static String describe(Throwable t) {
        if (t == null)
            return "";
        String m = t.getMessage();
        return t.getClass().getSimpleName() + (m != null ? ": " + m : "");
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String nonce = in.readLine().trim();
        PrintStream real = System.out;
        StringBuilder cases = new StringBuilder();
        StringBuilder errors = new StringBuilder();
        TestExecutionListener listener = new TestExecutionListener() {
            void add(String name, String outcome, String message) {
                if (cases.length() > 0)
                    cases.append(',');
                cases.append("{\"name\":").append(esc(name)).append(",\"outcome\":")
                        .append(esc(outcome)).append(",\"message\":").append(esc(message))
                        .append('}');
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                if (id.isTest())
                    add(id.getDisplayName(), "skipped", reason);
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult r) {
                boolean ok = r.getStatus() == TestExecutionResult.Status.SUCCESSFUL;
                String why = describe(r.getThrowable().orElse(null));
                if (id.isTest())
                    add(id.getDisplayName(), ok ? "passed" : "failed", why);
                else if (!ok && errors.length() == 0)
                    errors.append(id.getDisplayName()).append(": ").append(why);
            }
        };
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectClass(args[0])).build();
        String failure = null;
        try {
            Launcher launcher = LauncherFactory.create();
            launcher.execute(request, listener);
        } catch (Throwable t) {
            failure = describe(t);
        }
        System.out.flush();
        StringBuilder res = new StringBuilder("{\"cases\":[").append(cases).append(']');
        if (failure != null)
            res.append(",\"error\":").append(esc("the test run failed: " + failure));
        else if (errors.length() > 0)
            res.append(",\"error\":").append(esc(errors.toString()));
        else if (cases.length() == 0)
            res.append(",\"error\":\"the test class holds no tests\"");
        res.append('}');
        real.println();
        real.println("@@SM-RESULT " + nonce + " " + res);
        real.flush();
        System.exit(0);
    }
}
