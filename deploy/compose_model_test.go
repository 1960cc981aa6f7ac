package deploy

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The part of the Compose specification that the tests look at. Fields
// that Compose accepts in a short and a long form decode both.

type composeFile struct {
	Services map[string]*composeService `yaml:"services"`
	Networks map[string]*struct {
		Name     string `yaml:"name"`
		External bool   `yaml:"external"`
	} `yaml:"networks"`
	Volumes map[string]*struct {
		Name     string `yaml:"name"`
		External bool   `yaml:"external"`
	} `yaml:"volumes"`
}

type composeService struct {
	Image         string                   `yaml:"image"`
	Build         *composeBuild            `yaml:"build"`
	ContainerName string                   `yaml:"container_name"`
	User          string                   `yaml:"user"`
	Command       stringList               `yaml:"command"`
	Entrypoint    stringList               `yaml:"entrypoint"`
	Environment   stringMap                `yaml:"environment"`
	EnvFile       stringList               `yaml:"env_file"`
	Networks      serviceNetworks          `yaml:"networks"`
	DependsOn     dependsOn                `yaml:"depends_on"`
	Healthcheck   *healthcheck             `yaml:"healthcheck"`
	Ports         []portMapping            `yaml:"ports"`
	Volumes       []volumeMount            `yaml:"volumes"`
	Tmpfs         stringList               `yaml:"tmpfs"`
	ReadOnly      bool                     `yaml:"read_only"`
	CapDrop       []string                 `yaml:"cap_drop"`
	CapAdd        []string                 `yaml:"cap_add"`
	SecurityOpt   []string                 `yaml:"security_opt"`
	Privileged    bool                     `yaml:"privileged"`
	Restart       string                   `yaml:"restart"`
	Deploy        *struct{ Replicas *int } `yaml:"deploy"`
}

type composeBuild struct {
	Context    string    `yaml:"context"`
	Dockerfile string    `yaml:"dockerfile"`
	Args       stringMap `yaml:"args"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// stringList is a list of strings, or one string (split on white space, as
// Compose does for a command without shell quoting).
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = strings.Fields(n.Value)
		return nil
	case yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a string", c.Line)
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// stringMap is a mapping, or a list of KEY=VALUE strings.
type stringMap map[string]string

func (m *stringMap) UnmarshalYAML(n *yaml.Node) error {
	out := map[string]string{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s: want a scalar", v.Line, k.Value)
			}
			if v.Tag == "!!null" {
				out[k.Value] = ""
				continue
			}
			out[k.Value] = v.Value
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			k, v, _ := strings.Cut(c.Value, "=")
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: want a mapping or a list of KEY=VALUE", n.Line)
	}
	*m = out
	return nil
}

type serviceNetwork struct {
	Aliases []string `yaml:"aliases"`
}

// serviceNetworks is a list of network names, or a mapping of name to
// options (aliases).
type serviceNetworks map[string]serviceNetwork

func (s *serviceNetworks) UnmarshalYAML(n *yaml.Node) error {
	out := serviceNetworks{}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			out[c.Value] = serviceNetwork{}
		}
	case yaml.MappingNode:
		var raw map[string]*serviceNetwork
		if err := n.Decode(&raw); err != nil {
			return err
		}
		for k, v := range raw {
			if v == nil {
				v = &serviceNetwork{}
			}
			out[k] = *v
		}
	default:
		return fmt.Errorf("line %d: want a list or a mapping of networks", n.Line)
	}
	*s = out
	return nil
}

type dependency struct {
	Condition string `yaml:"condition"`
}

// dependsOn is a list of service names (condition service_started) or a
// mapping of name to condition.
type dependsOn map[string]dependency

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	out := dependsOn{}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			out[c.Value] = dependency{Condition: "service_started"}
		}
	case yaml.MappingNode:
		var raw map[string]dependency
		if err := n.Decode(&raw); err != nil {
			return err
		}
		for k, v := range raw {
			if v.Condition == "" {
				v.Condition = "service_started"
			}
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: want a list or a mapping of services", n.Line)
	}
	*d = out
	return nil
}

type healthcheck struct {
	Test    stringList `yaml:"test"`
	Disable bool       `yaml:"disable"`
}

// portMapping is "[IP:]PUBLISHED:TARGET[/PROTO]" or the long form.
type portMapping struct {
	Published string
	Target    string
}

func (p *portMapping) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var long struct {
			Target    string `yaml:"target"`
			Published string `yaml:"published"`
		}
		if err := n.Decode(&long); err != nil {
			return err
		}
		p.Target, p.Published = long.Target, long.Published
		return nil
	}
	s, _, _ := strings.Cut(n.Value, "/")
	parts := strings.Split(s, ":")
	p.Target = parts[len(parts)-1]
	if len(parts) >= 2 {
		p.Published = parts[len(parts)-2]
	}
	return nil
}

// volumeMount is "SOURCE:TARGET[:MODE]", "TARGET", or the long form.
type volumeMount struct {
	Type     string // volume, bind or tmpfs
	Source   string
	Target   string
	ReadOnly bool
}

func (v *volumeMount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var long struct {
			Type     string `yaml:"type"`
			Source   string `yaml:"source"`
			Target   string `yaml:"target"`
			ReadOnly bool   `yaml:"read_only"`
		}
		if err := n.Decode(&long); err != nil {
			return err
		}
		*v = volumeMount{Type: long.Type, Source: long.Source, Target: long.Target, ReadOnly: long.ReadOnly}
		return nil
	}
	parts := strings.Split(n.Value, ":")
	switch len(parts) {
	case 1:
		*v = volumeMount{Type: "volume", Target: parts[0]}
	default:
		*v = volumeMount{Source: parts[0], Target: parts[1]}
		if len(parts) > 2 {
			for _, o := range strings.Split(parts[2], ",") {
				if o == "ro" {
					v.ReadOnly = true
				}
			}
		}
		v.Type = "volume"
		if strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, "~") {
			v.Type = "bind"
		}
	}
	return nil
}

// role is the extagram subcommand a service runs ("edge", "feed", ...), or
// "" for a service of another image.
func (s *composeService) role() string {
	if len(s.Command) == 0 || strings.HasPrefix(s.Command[0], "-") {
		return ""
	}
	return s.Command[0]
}

// flag returns a flag of the service's command, or the EXTAGRAM_ variable
// that stands for it.
func (s *composeService) flag(name string) (string, bool) {
	if v, ok := flagValue(s.Command, name); ok {
		return v, true
	}
	v, ok := s.Environment[envName(name)]
	return v, ok
}

// writable reports whether path is inside a tmpfs or a writable mount.
func (s *composeService) writable(path string) bool {
	under := func(dir string) bool {
		dir = strings.TrimSuffix(dir, "/")
		return path == dir || strings.HasPrefix(path, dir+"/")
	}
	for _, t := range s.Tmpfs {
		dir, _, _ := strings.Cut(t, ":")
		if under(dir) {
			return true
		}
	}
	for _, m := range s.Volumes {
		if !m.ReadOnly && under(m.Target) {
			return true
		}
	}
	return !s.ReadOnly
}

const composePath = repoRoot + "/docker-compose.yml"

func loadCompose(t *testing.T) (*composeFile, string) {
	t.Helper()
	raw := readFile(t, composePath)
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	for name, s := range c.Services {
		if s == nil {
			t.Fatalf("docker-compose.yml: service %s is empty", name)
		}
	}
	return &c, string(raw)
}
