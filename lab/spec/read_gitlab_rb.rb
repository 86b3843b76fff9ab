# Reads a gitlab.rb WITHOUT running it: Ruby's own parser (Ripper) turns the text
# into a syntax tree, and only literal settings are taken from it:
#   name['key'] = VALUE, name['a']['b'] = VALUE, and the calls roles/git_data_dirs/
#   *external_url as `name VALUE` or `name(VALUE)`
# where VALUE is built from strings, numbers, symbols, true/false/nil, arrays (%w[] too) and
# hashes. Every other statement is reported as not reproduced, with its line.
# Nothing from the file is ever evaluated (lab import / lab doctor run this on the host).
#
# usage: ruby read_gitlab_rb.rb DISPLAY_NAME < gitlab.rb
# exit 0: {"settings": {...}, "skipped": [{"line": N, "text": "..."}]} on stdout
# exit 1: "DISPLAY_NAME:LINE: message" on stderr (not valid Ruby)
require 'json'
require 'ripper'

class NotLiteral < StandardError; end

class Reader
  attr_reader :settings, :skipped

  def initialize(source)
    @lines = source.lines
    @settings = {}
    @skipped = []
    @depth = 0
  end

  def read(tree)
    statements(tree[1])
  end

  private

  def statements(list)
    (list || []).each { |stmt| statement(stmt) }
  end

  def statement(stmt)
    return if stmt.nil? || stmt[0] == :void_stmt

    case stmt[0]
    when :assign then assign(stmt)
    when :command then call(name_of(stmt[1]), args_of(stmt[2]))
    when :method_add_arg then paren_call(stmt)
    else raise NotLiteral
    end
  rescue NotLiteral
    line = first_line(stmt)
    @skipped << { 'line' => line, 'text' => (line ? @lines[line - 1].to_s.strip : '')[0, 200] }
  end

  def assign(stmt)
    path = target(stmt[1])
    value = literal(stmt[2])
    *parents, last = path
    cursor = parents.reduce(@settings) do |hash, key|
      hash[key] = {} unless hash[key].is_a?(Hash)
      hash[key]
    end
    cursor[last] = value
  end

  # gitaly['a']['b'] -> ["gitaly", "a", "b"]
  def target(node)
    raise NotLiteral unless node[0] == :aref_field

    base(node[1]) + [key(index(node[2]))]
  end

  def base(node)
    deeper { base_of(node) }
  end

  def base_of(node)
    case node[0]
    when :vcall, :var_ref
      raise NotLiteral unless node[1][0] == :@ident

      [node[1][1]]
    when :aref then base(node[1]) + [key(index(node[2]))]
    else raise NotLiteral
    end
  end

  def index(node)
    args = node && node[0] == :args_add_block ? node[1] : node
    raise NotLiteral unless args.is_a?(Array) && args.length == 1

    literal(args[0])
  end

  def key(value)
    raise NotLiteral unless value.is_a?(String)

    value
  end

  def name_of(node)
    raise NotLiteral unless node.is_a?(Array) && node[0] == :@ident

    node[1]
  end

  def args_of(node)
    node = node[1] if node && node[0] == :arg_paren
    return [] if node.nil?
    raise NotLiteral unless node[0] == :args_add_block && node[2] == false

    node[1].map { |arg| literal(arg) }
  end

  def paren_call(stmt)
    raise NotLiteral unless stmt[1][0] == :fcall

    call(name_of(stmt[1][1]), args_of(stmt[2]))
  end

  # The calls Omnibus' gitlab.rb uses; any other call (system, require, ...) is code.
  CALLS = /\A(?:[a-z_]*external_url|roles|git_data_dirs)\z/.freeze

  def call(name, args)
    raise NotLiteral if args.empty? || !CALLS.match?(name)

    @settings[name] = args.length == 1 ? args[0] : args
  end

  def literal(node)
    deeper { literal_of(node) }
  end

  # No gitlab.rb nests this deep; a file that does would overflow Ruby's stack or
  # JSON's nesting limit (100), so the statement is listed instead.
  MAX_DEPTH = 40

  def deeper
    @depth += 1
    raise NotLiteral if @depth > MAX_DEPTH

    yield
  ensure
    @depth -= 1
  end

  def literal_of(node)
    case node[0]
    when :string_literal then string(node[1])
    when :@int then Integer(node[1].delete('_'), exception: false) || raise(NotLiteral)
    when :@float then finite(Float(node[1].delete('_')))
    when :symbol_literal then symbol(node[1])
    when :dyna_symbol then string(node[1])
    when :var_ref then keyword(node[1])
    when :array then (node[1] || []).map { |v| literal(v) }
    # A word of %w[...] or %i[...] (a %W word with #{} is a :word node: not read).
    when :@tstring_content then unescape(node[1], node[2])
    when :hash then hash(node[1] ? node[1][1] : [])
    when :bare_assoc_hash then hash(node[1])
    when :unary
      raise NotLiteral unless node[1] == :-@

      -numeric(literal(node[2]))
    else raise NotLiteral
    end
  end

  # 1e400 is Infinity, which JSON cannot carry: such a value is not a setting.
  def finite(value)
    raise NotLiteral unless value.finite?

    value
  end

  def numeric(value)
    raise NotLiteral unless value.is_a?(Numeric)

    value
  end

  def string(content)
    raise NotLiteral unless content.is_a?(Array) && content[0] == :string_content

    content[1..].map do |part|
      raise NotLiteral unless part[0] == :@tstring_content

      unescape(part[1], part[2])
    end.join
  end

  # Ripper gives a string's text as written: 'it\'s' arrives as it\'s. The character
  # before the text says which quoting applies; escapes are undone for '...' and, for
  # the common ones, "..."; any other backslash (heredocs, %q(), \u, \x) is not read.
  SINGLE_ESCAPES = { '\\' => '\\', "'" => "'" }.freeze
  DOUBLE_ESCAPES = { '\\' => '\\', '"' => '"', "'" => "'", 'n' => "\n", 't' => "\t",
                     'r' => "\r", 's' => ' ', '#' => '#' }.freeze

  def unescape(text, (line, column))
    return text unless text.include?('\\')

    escapes = { "'" => SINGLE_ESCAPES, '"' => DOUBLE_ESCAPES }[opening(line, column)]
    raise NotLiteral unless escapes

    text.gsub(/\\(.)/m) do
      char = Regexp.last_match(1)
      next escapes[char] if escapes.key?(char)
      # '...' keeps any other backslash; an escape of "..." outside the table is not read.
      raise NotLiteral unless escapes.equal?(SINGLE_ESCAPES)

      "\\#{char}"
    end
  end

  def opening(line, column)
    return nil unless line && column && column.positive?

    @lines[line - 1].to_s.byteslice(column - 1, 1)
  end

  def symbol(node)
    raise NotLiteral unless node[0] == :symbol && %i[@ident @const @kw].include?(node[1][0])

    node[1][1]
  end

  def keyword(node)
    raise NotLiteral unless node[0] == :@kw

    case node[1]
    when 'true' then true
    when 'false' then false
    when 'nil' then nil
    else raise NotLiteral
    end
  end

  def hash(assocs)
    assocs.each_with_object({}) do |assoc, out|
      raise NotLiteral unless assoc[0] == :assoc_new

      k = assoc[1][0] == :@label ? assoc[1][1].delete_suffix(':') : literal(assoc[1])
      raise NotLiteral unless k.is_a?(String) || k.is_a?(Numeric)

      out[k.to_s] = literal(assoc[2])
    end
  end

  def first_line(node)
    return nil unless node.is_a?(Array)
    return node[0] if node.length == 2 && node.all? { |x| x.is_a?(Integer) }

    node.each do |child|
      line = first_line(child)
      return line if line
    end
    nil
  end
end

name = ARGV[0] || 'gitlab.rb'
# A Ruby source file is UTF-8 unless a magic comment says otherwise, whatever the
# locale (LANG=C would make stdin US-ASCII and every accent a syntax error).
source = $stdin.binmode.read.force_encoding(Encoding::UTF_8)
begin
  tree = Ripper.sexp(source, name, 1)
rescue ArgumentError, EncodingError => e
  # e.g. `# encoding: bogus`: Ripper refuses the file before parsing it.
  warn "#{name}:1: #{e.message}"
  exit 1
end
if tree.nil?
  # Parsing only (Ripper), for the error message: nothing is evaluated.
  parser = Ripper.new(source, name, 1)
  message = nil
  parser.define_singleton_method(:compile_error) { |msg| message ||= [lineno, msg] }
  parser.define_singleton_method(:on_parse_error) { |msg| message ||= [lineno, msg] }
  parser.parse
  line, msg = message || [1, 'syntax error']
  warn "#{name}:#{line}: #{msg}"
  exit 1
end
reader = Reader.new(source)
reader.read(tree)
puts JSON.generate({ 'settings' => reader.settings, 'skipped' => reader.skipped })
