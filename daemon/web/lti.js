// lti.js: the LTI pages' only script (served by stepmarkd; the content-security policy allows
// no inline script). It follows the "continue" link after a launch and sends the deep linking
// response back to the LMS; without JavaScript both remain a link and a button to click.
'use strict';
(function () {
  const form = document.getElementById('lti-autosubmit');
  if (form) {
    form.submit();
    return;
  }
  const next = document.getElementById('lti-continue');
  if (next) location.href = next.getAttribute('href');
})();
