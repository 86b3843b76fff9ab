"""The sim's app node: REST slice, Git over HTTP (Workhorse's part), internal API, rails runner."""
