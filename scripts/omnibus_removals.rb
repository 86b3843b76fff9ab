# Lists the removals one release of Omnibus GitLab aborts reconfigure on, as JSON.
#
# usage: ruby scripts/omnibus_removals.rb DIR   (DIR: a copy of that release's
#        files/gitlab-cookbooks/package/libraries/deprecations.rb beside the stubs
#        scripts/omnibus_removals.py writes; run by that script, not by hand)
#
# Omnibus' own Gitlab::Deprecations is loaded, with its three helpers stubbed, and asked:
# its list (identify_deprecated_config and deprecate_only_if_value are recorded as they
# are called), then, for each entry, check_config(removal, probe, :removal) with a
# configuration holding only that setting, so every message is Omnibus' own text.
require 'json'

dir = ARGV.fetch(0)
require File.join(dir, 'deprecations.rb')

D = Gitlab::Deprecations
BLOCKS = %w[gitlab monitoring].freeze
RECORDED = { blocks: [], values: [], on: [true] }.freeze

class << D
  alias_method :orig_identify, :identify_deprecated_config
  def identify_deprecated_config(existing_config, config_keys, allowed_keys, deprecation, removal, note = nil)
    RECORDED[:blocks] << [config_keys.dup, allowed_keys.is_a?(Hash) ? allowed_keys.keys : Array(allowed_keys),
                          deprecation, removal, note] if RECORDED[:on].first
    orig_identify(existing_config, config_keys, allowed_keys, deprecation, removal, note)
  end

  if method_defined?(:deprecate_only_if_value) || private_method_defined?(:deprecate_only_if_value)
    alias_method :orig_only_if, :deprecate_only_if_value
    def deprecate_only_if_value(incoming_version, existing_config, type, config_keys, key, value, deprecated_version, removed_version, **opts)
      RECORDED[:values] << [config_keys.dup, key, value, deprecated_version, removed_version] if type == :probe
      orig_only_if(incoming_version, existing_config, type, config_keys, key, value, deprecated_version, removed_version, **opts)
    end
  end
end

def probe(keys, leaf)
  keys.reverse.inject(leaf) { |inner, k| { k => inner } }
end

def rb_path(keys)
  keys = keys.dup
  keys.shift if BLOCKS.include?(keys[0])
  keys[0] = keys[0].tr('-', '_')
  keys
end

def messages(removal, config)
  D.check_config(removal, config, :removal)
rescue StandardError => e
  warn "check_config(#{removal}) on #{config.to_json}: #{e.class}: #{e.message}"
  []
end

out = []
list = D.list({})
D.additional_deprecations('999.0', {}, :probe) if D.respond_to?(:additional_deprecations, true)
RECORDED[:on][0] = false

list.each do |entry|
  keys = entry[:config_keys]
  next if keys.first == 'roles'

  out << { 'path' => rb_path(keys), 'when' => 'set', 'deprecation' => entry[:deprecation].to_s,
           'removal' => entry[:removal].to_s,
           'messages' => messages(entry[:removal].to_s, probe(keys, 'x')) }
end

RECORDED[:blocks].each do |keys, allowed, deprecation, removal|
  out << { 'path' => rb_path(keys), 'when' => { 'other_than' => allowed },
           'deprecation' => deprecation.to_s, 'removal' => removal.to_s,
           'messages' => messages(removal.to_s, probe(keys + ['KEY'], 'x')) }
end

RECORDED[:values].each do |keys, key, value, deprecation, removal|
  out << { 'path' => rb_path(keys + [key]), 'when' => { 'equals' => value },
           'deprecation' => deprecation.to_s, 'removal' => removal.to_s,
           'messages' => messages(removal.to_s, probe(keys + [key], value)) }
end

# Removals written as methods of their own (17.8+): each needs a probe that sets it.
CUSTOM = {
  'remove_git_data_dirs' => [%w[git_data_dirs], 'set', probe(%w[gitlab git_data_dirs], { 'default' => { 'path' => '/x' } })],
  'remove_mattermost' => [%w[mattermost enable], { 'equals' => true }, probe(%w[mattermost enable], true)],
  'remove_gitaly_use_bundled_binaries' => [%w[gitaly configuration git use_bundled_binaries], 'set',
                                           probe(%w[gitaly configuration git use_bundled_binaries], true)],
  'remove_gitaly_bin_path' => [%w[gitaly configuration git bin_path], 'set',
                               probe(%w[gitaly configuration git bin_path], '/x')],
}.freeze
source = File.read(File.join(dir, 'deprecations.rb'))
source.scan(/messages \+= (remove_[a-z_]+)\(incoming_version, [a-z_]+, type, '([\d.]+)', '([\d.]+)'\)/) do |name, deprecation, removal|
  path, cond, config = CUSTOM.fetch(name) { abort "#{name}: a removal method this script does not know; add its probe to CUSTOM" }
  out << { 'path' => path, 'when' => cond, 'deprecation' => deprecation, 'removal' => removal,
           'messages' => D.send(name, removal, config, :removal, deprecation, removal) }
end

puts JSON.pretty_generate(out)
