"""What every role of a sim node shares: its gitlab.rb and secrets as its release reads them."""
