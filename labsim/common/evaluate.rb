# Evaluates GITLAB_OMNIBUS_CONFIG and then gitlab.rb the way Omnibus does (as Ruby,
# in that order, so the file wins) and prints every setting as one JSON object.
# Any `name['key'] = value`, `name(value)` or `name value` is accepted: deciding
# what the settings mean is left to simconfig.py, so this file stays dialect-free.
#
# usage: ruby evaluate.rb [GITLAB_RB]   (default /etc/gitlab/gitlab.rb)
# exit 0 with JSON on stdout, or exit 1 with "file:line: message" on stderr.
require 'json'

# Omnibus attribute hashes auto-vivify: gitaly['a']['b'] = 1 works without setup.
class SimAttrs < Hash
  def initialize
    super { |hash, key| hash[key] = SimAttrs.new }
  end
end

class SimConfig
  attr_reader :settings

  def initialize
    @settings = {}
  end

  def from_file(path)
    instance_eval(File.read(path), path, 1)
  end

  def method_missing(name, *args, &_block)
    key = name.to_s
    return super if key.end_with?('=', '?', '!')
    if args.empty?
      @settings[key] = SimAttrs.new unless @settings.key?(key)
      @settings[key]
    else
      @settings[key] = args.length == 1 ? args[0] : args
    end
  end

  def respond_to_missing?(_name, _include_private = false)
    true
  end
end

# Drop hashes that were only created by reading a missing key. Children go first:
# a chain of reads (gitaly['a']['b']) leaves a vivified hash holding only vivified
# hashes, which is empty once they are gone.
def prune(value)
  case value
  when Hash
    out = {}
    value.each do |k, v|
      kept = prune(v)
      next if v.is_a?(SimAttrs) && kept.empty?
      out[k.to_s] = kept
    end
    out
  when Array then value.map { |v| prune(v) }
  when Symbol then value.to_s
  else value
  end
end

path = ARGV[0] || '/etc/gitlab/gitlab.rb'
config = SimConfig.new
begin
  # gitlab.rb may print; keep stdout for the JSON alone.
  $stdout = $stderr
  env_config = ENV['GITLAB_OMNIBUS_CONFIG'].to_s
  config.instance_eval(env_config, 'GITLAB_OMNIBUS_CONFIG', 1) unless env_config.strip.empty?
  config.from_file(path) if File.exist?(path)
rescue SyntaxError, StandardError, ScriptError => e
  where = e.backtrace_locations&.find { |l| [path, 'GITLAB_OMNIBUS_CONFIG'].include?(l.path) }
  detail = e.is_a?(SyntaxError) ? e.message : "#{where ? "#{where.path}:#{where.lineno}: " : ''}#{e.class}: #{e.message}"
  warn "gitlab-testlab-sim: error evaluating #{path}:"
  warn detail
  exit 1
end
$stdout = STDOUT
puts JSON.generate(prune(config.settings))
