// Before the first paint (a classic script in <head>, not deferred): the page is laid out for
// JavaScript from its first frame, with no flash of the no-JavaScript layout.
document.documentElement.classList.add("js");
